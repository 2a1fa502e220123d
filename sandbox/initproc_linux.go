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
// signalled.
type adoptedInit struct {
	mu sync.Mutex
	fd int // -1 once waited for
}

func newAdoptedInit(pidfd int) *adoptedInit { return &adoptedInit{fd: pidfd} }

func (a *adoptedInit) signal(sig syscall.Signal) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fd < 0 {
		return os.ErrProcessDone
	}
	return unix.PidfdSendSignal(a.fd, sig, nil, 0)
}

var errAdoptedExit = errors.New("the sandbox init exited without the command's status")

func (a *adoptedInit) wait() error {
	a.mu.Lock()
	fd := a.fd
	a.mu.Unlock()
	if fd < 0 {
		return errAdoptedExit
	}
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || fds[0].Revents != 0 {
			break
		}
	}
	a.mu.Lock()
	unix.Close(a.fd)
	a.fd = -1
	a.mu.Unlock()
	// The exit status belongs to the daemon, which reaps it; the
	// command's status comes over the socket.
	return errAdoptedExit
}
