package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// nsID is empty on macOS: there are no namespaces to compare.
type nsID struct{}

func selfNamespaces() (map[string]nsID, error) { return nil, nil }

// peer is what the kernel says about the other end of a control connection.
type peer struct {
	pid   int
	start uint64 // process start time (µs since the epoch), to recognise the same process later
}

// checkPeer decides from kernel state alone whether the process at the
// other end of c may use the control socket: the same uid as the daemon
// (LOCAL_PEERCRED), and a live pid (LOCAL_PEERPID) whose start time pins it.
// A sandboxed process cannot get here at all: every fence Seatbelt profile
// denies connecting to unix sockets outside the session's own TMPDIR, and
// the runtime directory is private to the user.
func checkPeer(c net.Conn, self map[string]nsID) (peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{}, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var (
		cred            *unix.Xucred
		pid             int
		credErr, pidErr error
	)
	raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		pid, pidErr = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
	})
	if credErr != nil {
		return peer{}, fmt.Errorf("LOCAL_PEERCRED: %w", credErr)
	}
	if int(cred.Uid) != os.Geteuid() {
		return peer{}, fmt.Errorf("peer uid %d is not the daemon's", cred.Uid)
	}
	if pidErr != nil || pid <= 0 {
		return peer{}, fmt.Errorf("LOCAL_PEERPID: pid %d: %v", pid, pidErr)
	}
	start, err := procStart(pid)
	if err != nil {
		return peer{}, err
	}
	return peer{pid: pid, start: start}, nil
}

// procStart returns the start time of pid.
func procStart(pid int) (uint64, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		return 0, fmt.Errorf("kern.proc.pid.%d: %w", pid, err)
	}
	if int(kp.Proc.P_pid) != pid {
		return 0, fmt.Errorf("process %d is gone", pid)
	}
	tv := kp.Proc.P_starttime
	return uint64(tv.Sec)*1e6 + uint64(tv.Usec), nil
}

// alive reports whether the process p is still running (the same process,
// not a recycled pid).
func alive(p peer) bool {
	if p.pid <= 0 {
		return true
	}
	st, err := procStart(p.pid)
	return err == nil && (p.start == 0 || st == p.start)
}

// samePlace: no warm sandbox inits here.
func samePlace(p peer, self map[string]nsID) error { return nil }

// waitExit: no warm sandbox inits here, nothing to wait for.
func waitExit(p peer, limit time.Duration) {}
