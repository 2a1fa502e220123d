package sandbox_test

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// TestTIOCSTI runs the injection of ATTACKS.md T-01/T-02 with a real
// controlling terminal: directly it must inject (legacy_tiocsti=1 on the
// CI kernel), through fence it must not.
func TestTIOCSTI(t *testing.T) {
	b, _ := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti")
	sandboxtest.Require(t, strings.TrimSpace(string(b)) != "0", "dev.tty.legacy_tiocsti=0: TIOCSTI is off system-wide, the control run cannot inject")
	e := sandboxtest.New(t, writeDot)
	for _, v := range []struct{ name, script string }{
		{"plain", `python3 -c 'import fcntl,termios;[fcntl.ioctl(0,termios.TIOCSTI,bytes([c])) for c in b"INJECTED\n"]'`},
		{"high-bits", `python3 -c '
import ctypes
l=ctypes.CDLL(None,use_errno=True)
for c in b"INJECTED\n":
    l.syscall(16,0,ctypes.c_ulong(0x100005412),ctypes.byref(ctypes.c_char(c)))'`},
	} {
		t.Run(v.name, func(t *testing.T) {
			if got := runOnTTY(t, e, []string{"/bin/sh", "-c", v.script}); !strings.Contains(got, "INJECTED") {
				t.Fatalf("control: TIOCSTI did not inject without the sandbox (%q), the test proves nothing", got)
			}
			if got := runOnTTY(t, e, []string{e.Fence, "-s", e.Config, "--", "sh", "-c", v.script}); strings.Contains(got, "INJECTED") {
				t.Errorf("TIOCSTI injected into the caller's terminal from inside the sandbox: %q", got)
			}
		})
	}
}

// runOnTTY runs argv with a new PTY as its controlling terminal and
// returns what was left in the terminal's input queue afterwards (what the
// user's shell would read next).
func runOnTTY(t *testing.T, e *sandboxtest.Env, argv []string) string {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		sandboxtest.Require(t, false, "cannot open a pty: "+err.Error())
	}
	defer master.Close()
	defer slave.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = e.Project
	cmd.Env = e.Vars
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	go io.Copy(io.Discard, master) // drain output
	if err := cmd.Run(); err != nil {
		t.Logf("%v: %v", argv, err)
	}
	// Non-canonical, non-blocking read of the slave's pending input.
	fd := int(slave.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag &^= unix.ICANON | unix.ECHO
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 0, 1
	unix.IoctlSetTermios(fd, unix.TCSETS, tio)
	buf := make([]byte, 256)
	n, _ := unix.Read(fd, buf)
	if n < 0 {
		n = 0
	}
	return string(buf[:n])
}

// TestTTYSession drives sandbox.Start with TTY=true (through
// sandboxtest's driver): the command gets a PTY from the sandbox's own
// devpts as its controlling terminal, with the requested size, and
// Process.TTY is its master.
func TestTTYSession(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	cmd := exec.Command(sandboxtest.Driver(t), "-tty", "-rows", "33", "-cols", "101", "sh", "-c",
		`tty; stty size; ls /dev/pts | tr '\n' ' '; echo; [ -t 0 ] && echo ISATTY; read line; echo "got $line"; exit 3`)
	cmd.Dir, cmd.Env = e.Project, e.Vars
	cmd.Stdin = strings.NewReader("hello\n")
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 3 {
		t.Errorf("status %d (%v), want 3", code, err)
	}
	for _, want := range []string{"/dev/pts/0", "33 101", "ISATTY", "got hello", "0 ptmx"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%q missing from the session:\n%s", want, out)
		}
	}
}

// TestSignalForwarding: SIGTERM sent to fence reaches the command, whose
// own status comes back.
func TestSignalForwarding(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	cmd := exec.Command(e.Fence, "-s", e.Config, "-c", `trap 'echo TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done`)
	cmd.Dir, cmd.Env = e.Project, e.Vars
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	rest, _ := io.ReadAll(stdout)
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 7 || !strings.Contains(string(rest), "TERM") {
		t.Errorf("status %d, output %q", code, rest)
	}
}

// TestTerminalModesRestored: a command under `fence --` shares the caller's
// terminal; modes it changes (stty -echo) are put back when it exits.
func TestTerminalModesRestored(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	echoAfter := func(argv ...string) bool {
		master, slave, err := pty.Open()
		if err != nil {
			sandboxtest.Require(t, false, "cannot open a pty: "+err.Error())
		}
		defer master.Close()
		defer slave.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir, cmd.Env = e.Project, e.Vars
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		go io.Copy(io.Discard, master)
		cmd.Run()
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		return tio.Lflag&unix.ECHO != 0
	}
	if echoAfter("/bin/sh", "-c", "stty -echo") {
		t.Fatal("control: stty -echo did not change the terminal")
	}
	if !echoAfter(e.Fence, "-s", e.Config, "--", "stty", "-echo") {
		t.Error("the terminal was left without echo after fence --")
	}
}
