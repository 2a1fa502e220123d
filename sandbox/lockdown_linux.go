package sandbox

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Securebits (include/uapi/linux/securebits.h).
const (
	secbitNoroot                = 1 << 0
	secbitNorootLocked          = 1 << 1
	secbitNoSetuidFixup         = 1 << 2
	secbitNoSetuidFixupLocked   = 1 << 3
	secbitKeepCapsLocked        = 1 << 5
	secbitNoCapAmbientRaise     = 1 << 6
	secbitNoCapAmbientRaiseLock = 1 << 7
)

// errCgo is returned when the binary was built with cgo: then
// syscall.AllThreadsSyscall cannot apply a restriction to every thread.
var errCgo = errors.New("fence was built with cgo; the sandbox needs a CGO_ENABLED=0 build to restrict every thread")

// allThreads runs a syscall on every thread of the process.
func allThreads(trap, a1, a2, a3 uintptr) error {
	_, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	if e == syscall.ENOTSUP {
		return errCgo
	}
	if e != 0 {
		return e
	}
	return nil
}

// checkAllThreads reports errCgo when AllThreadsSyscall is unusable.
func checkAllThreads() error {
	return allThreads(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0, 0)
}

// dropExecPrivileges takes from the calling OS thread everything an exec
// could grant: no_new_privs (on every thread of the init: one
// stop-the-world round, which a warm init pays at boot), securebits that
// stop a later exec (even as uid 0) from granting capabilities (DESIGN.md
// §6.1), an empty bounding set and no ambient capabilities. The thread
// keeps its effective capabilities (the init still mounts and configures
// its network) until dropThreadPrivileges. The init never execs, so a warm
// one does this at boot. The command is forked from this thread and
// inherits exactly its credentials; the caller must hold
// runtime.LockOSThread. Threads started later inherit no_new_privs from
// the thread that starts them.
func dropExecPrivileges() error {
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	bits := uintptr(secbitNoroot | secbitNorootLocked | secbitNoSetuidFixup | secbitNoSetuidFixupLocked |
		secbitKeepCapsLocked | secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLock)
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, bits, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_SECUREBITS): %w", err)
	}
	// Up to the first capability the kernel does not know, as
	// verifyNoCaps reads them back.
	for c := 0; c < 64; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if err == unix.EINVAL && c > 0 {
				break // past the last capability
			}
			return fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", err)
	}
	return nil
}

// dropThreadPrivileges leaves the calling OS thread with no capabilities
// in any set; dropExecPrivileges must have run on it.
func dropThreadPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// dropProcessPrivileges empties the capability sets on every thread of
// the init (one stop-the-world round): it keeps nothing it could be
// tricked into using. The ambient set empties with the permitted one (the
// kernel keeps no capability ambient that is not permitted); no_new_privs
// is on every thread since boot (dropExecPrivileges); the bounding set and
// securebits only matter across exec, which the init's other threads never
// do.
func dropProcessPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// verifyNoCaps asks the kernel again for this thread's capability sets
// and no_new_privs, so a silent failure above cannot go unnoticed: capget
// for the effective, permitted and inheritable sets, a prctl per
// capability for the bounding and ambient ones, up to the first the kernel
// does not know (reading /proc/thread-self/status instead took 0.1 ms
// before every command).
func verifyNoCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for i, d := range data {
		if d.Effective|d.Permitted|d.Inheritable != 0 {
			return fmt.Errorf("capabilities left after dropping them: effective %#x, permitted %#x, inheritable %#x (capabilities %d-%d)",
				d.Effective, d.Permitted, d.Inheritable, 32*i, 32*i+31)
		}
	}
	for c := 0; c < 64; c++ {
		v, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL && c > 0 {
			break // past the last capability
		}
		if err != nil || v != 0 {
			return fmt.Errorf("capability %d left in the bounding set (%v)", c, err)
		}
		v, err = unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0)
		if err != nil || v != 0 {
			return fmt.Errorf("capability %d left in the ambient set (%v)", c, err)
		}
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || v != 1 {
		return fmt.Errorf("no_new_privs is not set (%v)", err)
	}
	return nil
}
