//go:build unix

package shellhook

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Terminal is the user's real terminal as seen by a relay: its input, its
// output, and whether they are terminals at all (a relay also works with
// pipes, without raw mode and window sizes).
type Terminal struct {
	In  *os.File
	Out *os.File

	mu    sync.Mutex
	saved *term.State // termios before raw mode; guarded by mu
}

// NewTerminal returns the Terminal for in and out.
func NewTerminal(in, out *os.File) *Terminal { return &Terminal{In: in, Out: out} }

// IsTTY reports whether the terminal's input is a terminal.
func (t *Terminal) IsTTY() bool { return term.IsTerminal(int(t.In.Fd())) }

// Size returns the window size of the terminal, or 24x80 when it has none.
func (t *Terminal) Size() (rows, cols uint16) {
	for _, f := range []*os.File{t.In, t.Out} {
		if ws, err := pty.GetsizeFull(f); err == nil && ws.Rows > 0 && ws.Cols > 0 {
			return ws.Rows, ws.Cols
		}
	}
	return 24, 80
}

// makeRaw puts the terminal in raw mode, remembering the previous mode.
func (t *Terminal) makeRaw() error {
	if !t.IsTTY() {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.saved != nil {
		return nil
	}
	st, err := term.MakeRaw(int(t.In.Fd()))
	if err != nil {
		return err
	}
	t.saved = st
	return nil
}

// Restore puts the terminal back in the mode it had before the relay. It
// is safe to call more than once and from a deferred function on any exit
// path.
func (t *Terminal) Restore() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.saved == nil {
		return nil
	}
	err := term.Restore(int(t.In.Fd()), t.saved)
	t.saved = nil
	return err
}

// Child is the sandboxed side of a relay.
type Child struct {
	// Master is the PTY master; Relay closes it.
	Master *os.File
	// Wait waits for the child to exit and returns its exit status.
	Wait func() (int, error)
	// Signal sends a signal to the child (nil: cannot).
	Signal func(os.Signal) error
	// Stopped, if set, receives when the child stopped: Ctrl-Z, a byte
	// in raw mode, reached its foreground job through the PTY. The relay
	// then gives the terminal back and stops fence, so that the shell that
	// ran it has the terminal again, as with any stopped job; Continue
	// resumes the child once fence is in the foreground again (fg).
	Stopped  <-chan struct{}
	Continue func() error
}

// RelayStats says what a relay did.
type RelayStats struct {
	// Blocked counts the escape sequences the filter dropped, by name.
	Blocked map[string]int
	// HungUp says that the relay hung the child up (its terminal went
	// away, or fence was told to end): the child's death by SIGHUP was
	// the relay's doing.
	HungUp bool
}

// drainTimeout bounds how long a relay keeps copying output after the child
// exited: a process left holding the slave must not keep fence waiting.
const drainTimeout = 500 * time.Millisecond

// Relay connects the terminal to c until c exits and returns c's exit
// status. It puts the terminal in raw mode (so that Ctrl-C, Ctrl-Z and the
// rest reach the PTY's own line discipline and the child's foreground job),
// copies input to the master, copies output through a [Filter] to the
// terminal, follows window size changes, and forwards a hangup. When ctx is
// done it sends SIGHUP to the child and keeps waiting for it. On return the
// terminal mode is restored and terminal modes the child left on (alternate
// screen, mouse reporting, hidden cursor, ...) are switched off.
func (t *Terminal) Relay(ctx context.Context, c Child) (int, RelayStats, error) {
	stats := RelayStats{Blocked: map[string]int{}}
	var statsMu sync.Mutex
	filt := NewFilter(t.Out)
	filt.OnBlock = func(what string) {
		statsMu.Lock()
		stats.Blocked[what]++
		statsMu.Unlock()
	}
	defer c.Master.Close()

	if err := t.makeRaw(); err != nil {
		return 0, stats, err
	}
	defer t.Restore()

	resize := func() {
		if t.IsTTY() {
			rows, cols := t.Size()
			_ = pty.Setsize(c.Master, &pty.Winsize{Rows: rows, Cols: cols})
		}
	}
	resize()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGWINCH, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// Output: master -> filter -> terminal. The filter is shared with the
	// final flush below, so writes are serialised.
	var outMu sync.Mutex
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Master.Read(buf)
			if n > 0 {
				outMu.Lock()
				_, werr := filt.Write(buf[:n])
				outMu.Unlock()
				if werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()

	// Input: terminal -> master, cancellable so that nothing typed after
	// the session ends is eaten by a leftover reader.
	stopIn, inDone, err := pumpInput(t.In, c.Master)
	if err != nil {
		return 0, stats, err
	}
	defer func() {
		stopIn()
		<-inDone
	}()

	waitDone := make(chan struct{})
	var code int
	var werr error
	go func() {
		code, werr = c.Wait()
		close(waitDone)
	}()

	hup := ctx.Done()
	var killTimer <-chan time.Time
loop:
	for {
		select {
		case <-waitDone:
			break loop
		case <-c.Stopped:
			// What the child left on (mouse reporting, the alternate
			// screen, ...) must not stay on for the shell that gets
			// the terminal back.
			outMu.Lock()
			if reset := filt.SuspendModes(); len(reset) > 0 && t.IsTTY() {
				_, _ = t.Out.Write(reset)
			}
			t.suspend(c, resize)
			outMu.Unlock()
		case s := <-sigs:
			if s == syscall.SIGWINCH {
				resize()
				continue
			}
			if c.Signal != nil {
				_ = c.Signal(syscall.SIGHUP)
			}
			stats.HungUp = true
		case <-hup:
			hup = nil
			if c.Signal != nil {
				_ = c.Signal(syscall.SIGHUP)
			}
			stats.HungUp = true
			killTimer = time.After(3 * time.Second)
		case <-killTimer:
			if c.Signal != nil {
				_ = c.Signal(syscall.SIGKILL)
			}
		}
	}
	select {
	case <-outDone:
	case <-time.After(drainTimeout):
	}
	outMu.Lock()
	_ = filt.Flush()
	if reset := filt.ResetModes(); len(reset) > 0 && t.IsTTY() {
		_, _ = t.Out.Write(reset)
	}
	// A leftover output goroutine (a process still holding the slave)
	// writes nowhere and counts nothing from here on.
	filt.w = io.Discard
	filt.OnBlock = nil
	outMu.Unlock()
	return code, stats, werr
}

// suspend gives the terminal back (its mode from before the relay) and
// stops this process, while the child is stopped. Continued in the
// background (bg), it stops again: in raw mode the keyboard would be read
// from the background. In the foreground it takes the terminal again and
// continues the child.
func (t *Terminal) suspend(c Child, resize func()) {
	_ = t.Restore()
	// SIGCONT says when this process was continued: kill returns before
	// the stop has reached every thread, and a check made then would see
	// fence still in the foreground and continue the child at once.
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	told := false
	for {
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		<-cont
		if !InBackground(t.In) {
			break
		}
		if !told {
			told = true
			_, _ = io.WriteString(t.Out, "fence: stays stopped in the background: it passes your keyboard to the command, which would read what you type into your shell; fg continues it\n")
		}
	}
	_ = t.makeRaw()
	resize()
	if c.Continue != nil {
		_ = c.Continue()
	}
}

// InBackground reports whether another process group than this process's
// is in the foreground of the terminal f. It is false when that cannot be
// known: a terminal that is gone (hung up, the shell that ran fence
// exited) has no keyboard to keep from anyone, and a fence that stopped
// itself until it is in the foreground again would stay stopped for good.
func InBackground(f *os.File) bool {
	pg, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pg != unix.Getpgrp()
}

// pumpInput copies in to w until stop is called. It waits for input with
// poll(2) on in and a pipe, so that stop takes effect at once even though
// in is a blocking terminal.
func pumpInput(in *os.File, w io.Writer) (stop func(), done <-chan struct{}, err error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	d := make(chan struct{})
	fd := int(in.Fd())
	go func() {
		defer close(d)
		defer pr.Close()
		buf := make([]byte, 4096)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(pr.Fd()), Events: unix.POLLIN}}
		for {
			fds[0].Revents, fds[1].Revents = 0, 0
			if _, err := unix.Poll(fds, -1); err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			if fds[1].Revents != 0 {
				return
			}
			if fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) == 0 {
				continue
			}
			n, err := unix.Read(fd, buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
			}
			if n == 0 || (err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN)) {
				// End of input: wait for stop, without spinning.
				fds = fds[1:]
				for {
					fds[0].Revents = 0
					if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
						return
					}
				}
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { pw.Close() }) }
	return stop, d, nil
}
