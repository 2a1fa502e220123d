package sandbox

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// initProcess is the sandbox init as the client holds it: a child the
// client cloned itself (cold), or one the daemon booted ahead and handed
// over (warm, see WarmPool). Either way the client signals it and waits
// until it, and with it the whole pid namespace, is gone.
type initProcess interface {
	signal(sig syscall.Signal) error
	// wait returns once the init has exited. Its error describes how,
	// when the client can know: an *exec.ExitError for a child.
	wait() error
}

// childInit is an init the client cloned: its own child.
type childInit struct{ cmd *exec.Cmd }

func (c childInit) signal(sig syscall.Signal) error { return c.cmd.Process.Signal(sig) }
func (c childInit) wait() error                     { return c.cmd.Wait() }

// adoptedInit is an init another process (the daemon) cloned and reaps;
// the client holds a pidfd of it. A pidfd becomes readable when the
// process has exited, and a pid namespace's init exits only after every
// other process in the namespace is gone: the same guarantee wait4 gives
// for a child. Signals go through the pidfd, so a recycled pid is never
// signalled. The pidfd waits in Go's netpoller (see pollable): the
// goroutine that waits for the init's end holds no thread.
type adoptedInit struct {
	mu sync.Mutex
	f  *os.File // the pidfd; nil once waited for
}

func newAdoptedInit(pidfd int) (*adoptedInit, error) {
	f, err := pollable(pidfd, "pidfd")
	if err != nil {
		return nil, err
	}
	return &adoptedInit{f: f}, nil
}

func (a *adoptedInit) signal(sig syscall.Signal) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return os.ErrProcessDone
	}
	rc, err := a.f.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) { err = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); cerr != nil {
		return cerr
	}
	return err
}

var errAdoptedExit = errors.New("the sandbox init exited without the command's status")

func (a *adoptedInit) wait() error {
	a.mu.Lock()
	f := a.f
	a.mu.Unlock()
	if f == nil {
		return errAdoptedExit
	}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 0)
			return n > 0 || (err != nil && err != unix.EINTR)
		})
	}
	a.mu.Lock()
	a.f.Close()
	a.f = nil
	a.mu.Unlock()
	// The exit status belongs to the daemon, which reaps it; the
	// command's status comes over the socket.
	return errAdoptedExit
}
