package sandbox_test

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
			// The marker proves the script ran inside: a fence that failed to
			// start would inject nothing and pass vacuously.
			marker := "tiocsti-ran-" + v.name
			got := runOnTTY(t, e, []string{e.Fence, "-s", e.Config, "--", "sh", "-c", ": > " + marker + "; " + v.script})
			if !e.Exists(marker) {
				t.Fatalf("the attack did not run inside the sandbox")
			}
			if strings.Contains(got, "INJECTED") {
				t.Errorf("TIOCSTI injected into the caller's terminal from inside the sandbox: %q", got)
			}
		})
	}
}

// ttyCommand prepares argv to run in e's project with a new PTY as its
// controlling terminal and standard input; the caller picks its outputs.
// The PTY is closed when the test ends.
func ttyCommand(t *testing.T, e *sandboxtest.Env, argv []string) (cmd *exec.Cmd, master, slave *os.File) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		sandboxtest.Require(t, false, "cannot open a pty: "+err.Error())
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	cmd = exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = e.Project, e.Vars
	cmd.Stdin = slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	return cmd, master, slave
}

// runOnTTY runs argv with a new PTY as its controlling terminal and
// returns what was left in the terminal's input queue afterwards (what the
// user's shell would read next).
func runOnTTY(t *testing.T, e *sandboxtest.Env, argv []string) string {
	t.Helper()
	cmd, master, slave := ttyCommand(t, e, argv)
	cmd.Stdout, cmd.Stderr = slave, slave
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
		cmd, master, slave := ttyCommand(t, e, argv)
		cmd.Stdout, cmd.Stderr = slave, slave
		go io.Copy(io.Discard, master)
		// The command must really have run (stty succeeded): a fence that
		// failed to start would leave echo on and pass vacuously.
		if err := cmd.Run(); err != nil {
			t.Fatalf("%q: %v", argv, err)
		}
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

// TestRunEscapesFiltered: `fence -- CMD` run from a terminal must not let
// the command set the host terminal's clipboard (OSC 52) or its idea of
// the working directory (OSC 7) (ATTACKS.md T-06, T-10, red team B5):
// with stdin and stdout on the terminal the command gets a PTY and the
// filtered relay; with only the output on it, the output is filtered;
// with only the keyboard on it, the command gets it read-only. The
// controls, without fence, show tmux takes both.
func TestRunEscapesFiltered(t *testing.T) {
	_, err := exec.LookPath("tmux")
	sandboxtest.Require(t, err == nil, "tmux not installed")
	e := sandboxtest.New(t, writeDot)
	conf := e.Write("~/tmux.conf", "set -g set-clipboard on\n")
	const script = `printf '\033]52;c;%s\007' "$(printf PWNCLIP | base64)"; printf '\033]7;file://localhost/pwnpath\007'`
	q := shQuote
	for i, v := range []struct {
		name, cmd string
		control   bool
	}{
		{"control", "sh -c " + q(script), true},
		{"pty", q(e.Fence) + " -s " + q(e.Config) + " -- sh -c " + q(script), false},
		{"output-only", q(e.Fence) + " -s " + q(e.Config) + " -- sh -c " + q(script) + " </dev/null", false},
		{"dash-c", q(e.Fence) + " -s " + q(e.Config) + " -c " + q(script), false},
		// Only the keyboard on the terminal: the command writes to its
		// stdin, which a shell opens read-write.
		{"control-via-stdin", "sh -c " + q("exec 1>&0; "+script+"; exit 0") + " >/dev/null", true},
		{"via-stdin", q(e.Fence) + " -s " + q(e.Config) + " -- sh -c " + q("exec 1>&0; "+script+"; exit 0") + " >/dev/null", false},
		// A background job (job control on) must not be stopped by
		// terminal mode changes, and is still filtered.
		{"background", "bash --norc -m -c " + q(q(e.Fence)+" -s "+q(e.Config)+" -- sh -c "+q(script)+" & wait $!"), false},
	} {
		t.Run(v.name, func(t *testing.T) {
			sock := "fence-run-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(i)
			tm := func(args ...string) string {
				out, _ := exec.Command("tmux", append([]string{"-L", sock, "-f", conf}, args...)...).CombinedOutput()
				return string(out)
			}
			defer exec.Command("tmux", "-L", sock, "kill-server").Run()
			args := []string{"new-session", "-d", "-x", "100", "-y", "30", "-c", e.Project, "--", "env", "-i"}
			args = append(args, e.Vars...)
			args = append(args, "TERM=screen", "/bin/sh", "-c", v.cmd+"; echo RUN-DONE $?; sleep 600")
			if out, err := exec.Command("tmux", append([]string{"-L", sock, "-f", conf}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("tmux: %v\n%s", err, out)
			}
			screen := ""
			for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
				if screen = tm("capture-pane", "-p", "-J"); strings.Contains(screen, "RUN-DONE") {
					break
				}
			}
			if !strings.Contains(screen, "RUN-DONE 0") {
				t.Fatalf("the command did not finish with status 0:\n%s", screen)
			}
			clip := strings.Contains(tm("list-buffers", "-F", "#{buffer_sample}"), "PWNCLIP")
			path := strings.Contains(tm("display-message", "-p", "#{pane_path}"), "pwnpath")
			if v.control {
				if !clip || !path {
					t.Fatalf("control: without fence tmux did not take the clipboard (%v) or the path (%v); the test proves nothing", clip, path)
				}
				return
			}
			if clip {
				t.Error("OSC 52 from inside the sandbox set the terminal's clipboard")
			}
			if path {
				t.Error("OSC 7 from inside the sandbox set the terminal's working directory")
			}
		})
	}
}

// TestCallerTerminalIoctls: with the keyboard on a terminal and the output
// redirected, `fence --` passes the caller's terminal on as stdin; the
// command must not change it in ways that outlast the run, beyond the
// termios fence restores: its line discipline (TIOCSETD, red team B5),
// exclusive mode, which makes every later open of the terminal fail
// (TIOCEXCL), or stopped output, which hung fence on the command's stderr
// (TCXONC). Each control undoes what it did.
func TestCallerTerminalIoctls(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	for _, c := range []struct{ name, try, undo string }{
		{"TIOCSETD", `fcntl.ioctl(0,termios.TIOCSETD,struct.pack("i",0))`, ``},
		{"TIOCEXCL", `fcntl.ioctl(0,termios.TIOCEXCL)`, `fcntl.ioctl(0,termios.TIOCNXCL)`},
		{"TCXONC", `termios.tcflow(0,termios.TCOOFF)`, `termios.tcflow(0,termios.TCOON)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			script := `echo TRY; python3 -c 'import fcntl,termios,struct;` + c.try + `;print("IOCTL-OK");` + c.undo + `'`
			run := func(argv ...string) string {
				cmd, _, _ := ttyCommand(t, e, argv)
				out, _ := cmd.CombinedOutput()
				return string(out)
			}
			if out := run("/bin/sh", "-c", script); !strings.Contains(out, "IOCTL-OK") {
				t.Fatalf("control: %s failed without the sandbox: %s", c.name, out)
			}
			out := run(e.Fence, "-s", e.Config, "--", "sh", "-c", script)
			if !strings.Contains(out, "TRY") {
				t.Fatalf("the script did not run inside the sandbox: %s", out)
			}
			if strings.Contains(out, "IOCTL-OK") {
				t.Errorf("%s on the caller's terminal worked inside the sandbox: %s", c.name, out)
			}
		})
	}
}
