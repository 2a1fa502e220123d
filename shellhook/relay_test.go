//go:build unix

package shellhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"
)

// outerTerm is a fake user terminal: a PTY pair whose slave is the
// Terminal the relay uses and whose master the test types into and reads.
type outerTerm struct {
	master, slave *os.File
	mu            sync.Mutex
	buf           bytes.Buffer
}

func newOuterTerm(t *testing.T) *outerTerm {
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	_ = pty.Setsize(m, &pty.Winsize{Rows: 30, Cols: 100})
	o := &outerTerm{master: m, slave: s}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			o.mu.Lock()
			o.buf.Write(b[:n])
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { s.Close(); m.Close() })
	return o
}

func (o *outerTerm) output() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *outerTerm) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(o.output(), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %q; output so far: %q", want, o.output())
}

// startChild runs script under a fresh PTY, standing in for the sandbox
// (tests only: fence itself never runs a shell outside the sandbox).
func startChild(t *testing.T, script string) Child {
	cmd := exec.Command("/bin/sh", "-c", script)
	master, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	return Child{
		Master: master,
		Wait: func() (int, error) {
			err := cmd.Wait()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode(), nil
			}
			return 0, err
		},
		Signal: cmd.Process.Signal,
	}
}

func TestRelayFiltersAndRestores(t *testing.T) {
	o := newOuterTerm(t)
	before, err := term.GetState(int(o.slave.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	tm := NewTerminal(o.slave, o.slave)
	c := startChild(t, `printf 'A\033]52;c;ZXZpbA==\007B\033[?1049h\033P$q"p\033\\C\n'; exit 7`)
	code, stats, err := tm.Relay(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
	o.waitFor(t, "AB\x1b[?1049hC")
	o.waitFor(t, "\x1b[?1049l") // the reset written on exit
	out := o.output()
	if strings.Contains(out, "]52") || strings.Contains(out, "\x1bP") {
		t.Errorf("blocked sequence reached the terminal: %q", out)
	}
	if !strings.Contains(out, "\x1b[?1049l") {
		t.Errorf("alternate screen not reset on exit: %q", out)
	}
	if stats.Blocked["OSC 52"] != 1 || stats.Blocked["DCS"] != 1 {
		t.Errorf("stats %v", stats.Blocked)
	}
	after, _ := term.GetState(int(o.slave.Fd()))
	if !termStateEqual(before, after) {
		t.Errorf("terminal mode not restored")
	}
}

func termStateEqual(a, b *term.State) bool {
	return a != nil && b != nil && *a == *b
}

func TestRelayInputResizeAndControlChars(t *testing.T) {
	o := newOuterTerm(t)
	tm := NewTerminal(o.slave, o.slave)
	// The child reports its window size, then waits in a sleep that Ctrl-C
	// must interrupt (the PTY's own line discipline turns the byte into
	// SIGINT for the child's foreground job). It reports the size only once
	// a line came through the relay, which sizes the child's PTY before it
	// relays input: reported at once, the size could precede the relay.
	c := startChild(t, `read x; stty size; read x; stty size; trap 'echo GOT-INT; exit 3' INT; echo READY; sleep 20 & wait`)
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, _, err := tm.Relay(context.Background(), c)
		done <- result{code, err}
	}()
	io.WriteString(o.master, "start\r")
	o.waitFor(t, "30 100")
	if err := pty.Setsize(o.master, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	// The real terminal would send SIGWINCH to its foreground group; the
	// test process is not in it, so send it by hand.
	_ = syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	time.Sleep(100 * time.Millisecond)
	io.WriteString(o.master, "go\r")
	o.waitFor(t, "40 120")
	o.waitFor(t, "READY")
	io.WriteString(o.master, "\x03")
	o.waitFor(t, "GOT-INT")
	select {
	case r := <-done:
		if r.err != nil || r.code != 3 {
			t.Errorf("relay returned %d, %v; want 3", r.code, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not return")
	}
}

func TestRelayContextHangsUpChild(t *testing.T) {
	o := newOuterTerm(t)
	tm := NewTerminal(o.slave, o.slave)
	c := startChild(t, `trap 'exit 9' HUP; echo UP; sleep 30 & wait`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _, _ := tm.Relay(ctx, c)
		done <- code
	}()
	o.waitFor(t, "UP")
	cancel()
	select {
	case code := <-done:
		if code != 9 {
			t.Errorf("exit %d, want 9", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not return after cancel")
	}
}
