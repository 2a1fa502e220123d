package sandbox

import (
	"fmt"
	"slices"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Why not elastic/go-seccomp-bpf's Policy: its generated program sends
// syscalls made through a foreign architecture's entry point (int 0x80 on
// x86-64) to the default action, which for a deny list is "allow"
// (ATTACKS.md X-04), and it compares ioctl requests on all 64 bits while the
// kernel only looks at the low 32 (T-02). The program below is small enough
// to write by hand with x/net/bpf.

// deniedSyscalls return EPERM (DESIGN.md §6.4): mounts and namespaces,
// tracing and cross-process memory access, kernel modules and kexec, bpf,
// perf, keyrings, io_uring, userfaultfd, file handles and a few more that
// only administrators need.
var deniedSyscalls = append([]uintptr{
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT, unix.SYS_SETNS,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_OPEN_TREE, unix.SYS_OPEN_TREE_ATTR, unix.SYS_MOVE_MOUNT, unix.SYS_MOUNT_SETATTR,
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD,
	unix.SYS_KCMP, unix.SYS_PROCESS_MADVISE,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE,
	unix.SYS_DELETE_MODULE,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	unix.SYS_USERFAULTFD, unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT,
	unix.SYS_ACCT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_REBOOT, unix.SYS_SYSLOG,
	unix.SYS_QUOTACTL, unix.SYS_VHANGUP, unix.SYS_FANOTIFY_INIT, unix.SYS_LOOKUP_DCOOKIE,
	unix.SYS_PERSONALITY,
}, archDeniedSyscalls...)

// deniedIoctls return EPERM whatever the descriptor. TIOCSTI and TIOCLINUX
// type into a terminal (T-01, T-04). The others act on the caller's own
// terminal when `fence --` passes it on as stdin (the keyboard on a
// terminal, the output redirected), beyond the termios fence restores at
// the end: TIOCSETD changes its line discipline and TIOCCONS redirects the
// console (red team B5); TIOCEXCL makes every later open of the terminal
// fail with EBUSY (ssh's and git's password prompts, less, pinentry) until
// something clears it, and TCXONC stops its output, which since Linux
// 5.12 the user's Ctrl-Q no longer restarts: fence hung writing the
// command's stderr to it. No ordinary program needs any of them.
var deniedIoctls = []uint32{unix.TIOCSTI, unix.TIOCLINUX, unix.TIOCSETD, unix.TIOCCONS, unix.TIOCEXCL, unix.TCXONC}

// namespaceFlags are the clone/unshare flags that create namespaces.
// CLONE_NEWTIME (0x80) is left out: for clone it overlaps the exit signal
// bits, and a time namespace grants nothing.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// seccompOptions tune the filter to the policy.
type seccompOptions struct {
	// DenyMPTCP refuses IPPROTO_MPTCP sockets, which Landlock's TCP bind
	// rule does not cover.
	DenyMPTCP bool
}

// The filter is installed in two parts. The kernel's cost of installing
// a filter grows with its length (it runs the filter for every syscall
// number to build its cache: 0.15–0.25 ms for the whole one here), so the
// base, all but what the init itself still needs, goes on at boot, where
// a warm init waits off the command's path; the late part, the mount
// syscalls with which the init builds the root once its configuration
// arrives, and what depends on the policy, at the lockdown (15–35 µs).
// The kernel runs both on every syscall and takes the stricter answer.

// lateDenied are the denied syscalls of the late part.
var lateDenied = []uintptr{
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_OPEN_TREE, unix.SYS_OPEN_TREE_ATTR, unix.SYS_MOVE_MOUNT, unix.SYS_MOUNT_SETATTR,
}

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retNOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	offNr    = 0
	offArch  = 4
)

func argLow(i int) uint32 { return uint32(16 + 8*i) } // little-endian low half

// archPrologue kills a syscall made through another architecture's entry
// point (or x32's), then loads the syscall number: both parts start so.
func archPrologue() ([]bpf.Instruction, error) {
	if auditArch == 0 {
		return nil, fmt.Errorf("seccomp: architecture not supported")
	}
	p := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArch, SkipTrue: 1},
		bpf.RetConstant{Val: retKill},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	}
	if x32Bit != 0 {
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32Bit, SkipFalse: 1},
			bpf.RetConstant{Val: retKill},
		)
	}
	return p, nil
}

// denyEach answers EPERM to each of nrs (the syscall number loaded).
func denyEach(nrs []uintptr) []bpf.Instruction {
	var p []bpf.Instruction
	for _, nr := range nrs {
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(nr), SkipTrue: 1},
			bpf.RetConstant{Val: retEPERM},
		)
	}
	return p
}

// seccompBaseInstructions is the base part before assembly (tests run the
// parts in x/net/bpf's VM).
func seccompBaseInstructions() ([]bpf.Instruction, error) {
	p, err := archPrologue()
	if err != nil {
		return nil, err
	}
	var base []uintptr
	for _, nr := range deniedSyscalls {
		if !slices.Contains(lateDenied, nr) {
			base = append(base, nr)
		}
	}
	p = append(p, denyEach(base)...)
	p = append(p,
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(unix.SYS_CLONE3), SkipTrue: 1},
		// clone3 passes its flags in memory, out of the filter's reach:
		// ENOSYS makes libcs fall back to clone, which is checked below.
		bpf.RetConstant{Val: retNOSYS},
	)
	for _, nr := range []uintptr{unix.SYS_CLONE, unix.SYS_UNSHARE} {
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(nr), SkipTrue: 4},
			bpf.LoadAbsolute{Off: argLow(0), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: namespaceFlags, SkipTrue: 1},
			bpf.RetConstant{Val: retAllow},
			bpf.RetConstant{Val: retEPERM},
		)
	}
	// ioctl: the kernel truncates the request to 32 bits, so compare the
	// low half only (ATTACKS.md T-02).
	p = append(p,
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(unix.SYS_IOCTL), SkipTrue: uint8(len(deniedIoctls) + 3)},
		bpf.LoadAbsolute{Off: argLow(1), Size: 4},
	)
	for i, req := range deniedIoctls {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpEqual, Val: req, SkipTrue: uint8(len(deniedIoctls) - i)})
	}
	p = append(p,
		bpf.RetConstant{Val: retAllow},
		bpf.RetConstant{Val: retEPERM},
	)
	// socket and socketpair: only unix, IPv4, IPv6 and routing netlink.
	for _, nr := range []uintptr{unix.SYS_SOCKET, unix.SYS_SOCKETPAIR} {
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(nr), SkipTrue: 9},
			bpf.LoadAbsolute{Off: argLow(0), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_UNIX, SkipTrue: 6},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_INET, SkipTrue: 5},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AF_INET6, SkipTrue: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.AF_NETLINK, SkipTrue: 2},
			bpf.LoadAbsolute{Off: argLow(2), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.NETLINK_ROUTE, SkipTrue: 1},
			bpf.RetConstant{Val: retEPERM},
			bpf.RetConstant{Val: retAllow},
		)
	}
	p = append(p, bpf.RetConstant{Val: retAllow})
	return p, nil
}

// seccompLateInstructions is the late part before assembly.
func seccompLateInstructions(opts seccompOptions) ([]bpf.Instruction, error) {
	p, err := archPrologue()
	if err != nil {
		return nil, err
	}
	p = append(p, denyEach(lateDenied)...)
	if opts.DenyMPTCP {
		// socketpair makes only AF_UNIX pairs: socket alone matters.
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(unix.SYS_SOCKET), SkipTrue: 3},
			bpf.LoadAbsolute{Off: argLow(2), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_MPTCP, SkipTrue: 1},
			bpf.RetConstant{Val: retEPERM},
		)
	}
	p = append(p, bpf.RetConstant{Val: retAllow})
	return p, nil
}

// installSeccompBase loads the base part on the calling thread only (the
// init's main thread, at boot; Go starts its other threads from a template
// thread, which has none): the late part's TSYNC gives every thread both.
// no_new_privs must be set already.
func installSeccompBase() error {
	p, err := seccompBaseInstructions()
	if err != nil {
		return err
	}
	return installFilter(p, 0)
}

// installSeccompLate loads the late part on every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC), which then all run both parts.
func installSeccompLate(opts seccompOptions) error {
	p, err := seccompLateInstructions(opts)
	if err != nil {
		return err
	}
	return installFilter(p, unix.SECCOMP_FILTER_FLAG_TSYNC)
}

// seccompBudgetUsed is why a filter fails with ENOMEM where the kernel has
// seccomp (the init's refusal and fence doctor say it).
const seccompBudgetUsed = "the seccomp filters fence already runs under (from whatever started it) use up the kernel's budget for filters: run fence from outside that sandbox"

func installFilter(p []bpf.Instruction, flags uintptr) error {
	raw, err := bpf.Assemble(p)
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", e)
	}
	if r != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): thread %d could not be synchronized", r)
	}
	return nil
}
