package sandbox_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// tmuxShell is an interactive bash (job control on) in a tmux server of
// its own, in e's project and environment.
type tmuxShell struct {
	t    *testing.T
	sock string
}

func newTmuxShell(t *testing.T, e *sandboxtest.Env, name string) *tmuxShell {
	t.Helper()
	_, err := exec.LookPath("tmux")
	sandboxtest.Require(t, err == nil, "tmux not installed")
	s := &tmuxShell{t: t, sock: "fence-jobs-" + strconv.Itoa(os.Getpid()) + "-" + name}
	args := []string{"-L", s.sock, "-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "40", "-c", e.Project, "--", "env", "-i"}
	args = append(args, e.Vars...)
	args = append(args, "TERM=screen", "PS1=READY$ ", "bash", "--norc", "--noprofile", "-i")
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "-L", s.sock, "kill-server").Run() })
	s.waitFor("READY$")
	return s
}

// fenceLine is the shell line that runs script with sh -c in e's sandbox,
// then the rest of the line (redirections).
func fenceLine(e *sandboxtest.Env, script, rest string) string {
	return shQuote(e.Fence) + " -s " + shQuote(e.Config) + " -- sh -c " + shQuote(script) + rest
}

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// stoppedUntilFg checks that, fence stopped, the command does not write
// file for a while, and that it does once fg continues it.
func stoppedUntilFg(t *testing.T, e *sandboxtest.Env, s *tmuxShell, file string, while time.Duration) {
	t.Helper()
	time.Sleep(while)
	if e.Exists(file) {
		t.Fatalf("the command ran on while fence was stopped")
	}
	s.line("fg")
	if !waitUntil(func() bool { return e.Exists(file) }) {
		t.Fatalf("fg did not continue the command; screen:\n%s", s.screen())
	}
}

func (s *tmuxShell) tmux(args ...string) string {
	out, _ := exec.Command("tmux", append([]string{"-L", s.sock}, args...)...).CombinedOutput()
	return string(out)
}

func (s *tmuxShell) line(text string) { s.tmux("send-keys", "-l", text); s.tmux("send-keys", "Enter") }

func (s *tmuxShell) screen() string { return s.tmux("capture-pane", "-p", "-J") }

// waitFor waits until the screen shows text, and fails the test if it
// never does.
func (s *tmuxShell) waitFor(text string) {
	s.t.Helper()
	if !s.shows(text, 20*time.Second) {
		s.t.Fatalf("%q never showed; screen:\n%s", text, s.screen())
	}
}

// shows waits up to d for the screen to show text.
func (s *tmuxShell) shows(text string, d time.Duration) bool {
	for start := time.Now(); time.Since(start) < d; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(s.screen(), text) {
			return true
		}
	}
	return false
}

// TestKeyboardNotReadInTheBackground (ATTACKS.md §T): the keyboard on a
// fenced command's stdin is never read while fence is not the terminal's
// foreground job. The command runs in a session of its own, so the kernel
// does not stop it (SIGTTIN) for reading that terminal from the
// background, and Ctrl-Z stopped fence alone: the command read what the
// user typed next into their shell (a sudo password, say). Each run
// starts a sandboxed reader that copies its stdin byte by byte into a
// file, gets fence out of the foreground, types a line into the shell,
// and checks that the shell got it and the file did not. Seen failing
// without the fix: the file had what was typed, the shell a mangled line.
// The controls run the same reader without fence.
func TestKeyboardNotReadInTheBackground(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	// The sandbox is up (the marker file exists) before fence leaves the
	// foreground; the reader starts a moment after.
	reader := func(name string) string {
		return "sh -c " + shQuote("exec 2>/dev/null; : > "+name+".up; sleep 0.5; exec dd bs=1 of="+name+".captured status=none") + " >/dev/null"
	}
	// A reader that arms a timer sending it SIGCONT every 50 ms: stopped
	// with the rest of the sandbox, it continues itself (red team of the
	// eleventh session: it read the line typed into the shell).
	e.Write("self-continuing.py", selfContinuingReader)
	selfContinuing := func(name string) string {
		return "python3 self-continuing.py " + name + " >/dev/null"
	}
	fence := shQuote(e.Fence) + " -s " + shQuote(e.Config) + " -- "
	for _, v := range []struct {
		name string
		// start runs the reader and gets it out of the foreground, once
		// up says the reader runs.
		start     func(s *tmuxShell, reader string, up func() bool)
		sandboxed bool
	}{
		{"control-ctrl-z", ctrlZ, false},
		{"ctrl-z", ctrlZ, true},
		{"control-background", startInBackground, false},
		{"background", startInBackground, true},
		{"ctrl-z-then-bg", ctrlZThenBg, true},
		{"ctrl-z-self-continuing", ctrlZ, true},
	} {
		t.Run(v.name, func(t *testing.T) {
			s := newTmuxShell(t, e, v.name)
			cmd := reader(v.name)
			if strings.Contains(v.name, "self-continuing") {
				cmd = selfContinuing(v.name)
			}
			if v.sandboxed {
				cmd = fence + cmd
			}
			v.start(s, cmd, func() bool { return waitUntil(func() bool { return e.Exists(v.name + ".up") }) })
			time.Sleep(time.Second) // the reader would be reading by now
			mark := "typed-" + v.name
			s.line("echo " + mark + "-shell")
			shellGot := s.shows("\n"+mark+"-shell\n", 5*time.Second)
			if got := e.Read(v.name + ".captured"); got != "" && got != "<missing>" {
				t.Errorf("the command read the keyboard while fence was not in the foreground: %q", got)
			}
			if !shellGot {
				t.Errorf("the shell did not get the whole line; screen:\n%s", s.screen())
			}
		})
	}
}

// selfContinuingReader copies its stdin into NAME.captured byte by byte,
// with a POSIX timer sending it SIGCONT every 50 ms; NAME.up says it runs.
const selfContinuingReader = `import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
class sigevent(ctypes.Structure):
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int), ("pad", ctypes.c_byte * 48)]
class timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
class itimerspec(ctypes.Structure):
    _fields_ = [("interval", timespec), ("value", timespec)]
timer = ctypes.c_void_p()
ev = sigevent(None, signal.SIGCONT, 0)  # SIGEV_SIGNAL
if libc.timer_create(1, ctypes.byref(ev), ctypes.byref(timer)) != 0:  # CLOCK_MONOTONIC
    sys.exit("timer_create: errno %d" % ctypes.get_errno())
every = timespec(0, 50000000)
if libc.timer_settime(timer, 0, ctypes.byref(itimerspec(every, every)), None) != 0:
    sys.exit("timer_settime: errno %d" % ctypes.get_errno())
name = sys.argv[1]
open(name + ".up", "w").close()
out = open(name + ".captured", "wb", buffering=0)
while True:
    b = os.read(0, 1)
    if not b:
        break
    out.write(b)
`

// waitUntil polls ok for up to 10 s.
func waitUntil(ok func() bool) bool { return waitUntilFor(10*time.Second, ok) }

// waitUntilFor polls ok for up to d.
func waitUntilFor(d time.Duration, ok func() bool) bool {
	for start := time.Now(); time.Since(start) < d; time.Sleep(20 * time.Millisecond) {
		if ok() {
			return true
		}
	}
	return false
}

// ctrlZ starts the reader in the foreground and stops it (Ctrl-Z).
func ctrlZ(s *tmuxShell, reader string, up func() bool) {
	s.line(reader)
	if !up() {
		s.t.Fatalf("the reader did not start; screen:\n%s", s.screen())
	}
	s.tmux("send-keys", "C-z")
	s.waitFor("Stopped")
}

// startInBackground starts the reader as a background job.
func startInBackground(s *tmuxShell, reader string, up func() bool) {
	s.line(reader + " &")
	if !up() {
		s.t.Fatalf("the reader did not start; screen:\n%s", s.screen())
	}
}

// ctrlZThenBg stops the reader and continues it in the background, which
// fence answers by staying stopped, with a message.
func ctrlZThenBg(s *tmuxShell, reader string, up func() bool) {
	ctrlZ(s, reader, up)
	s.line("bg")
	s.waitFor("stays stopped in the background")
}

// TestKeyboardAfterFg: after Ctrl-Z and fg, the command is continued and
// reads the keyboard again, as without fence.
func TestKeyboardAfterFg(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	s := newTmuxShell(t, e, "fg")
	s.line(fenceLine(e, "sleep 0.5; read line; echo \"got $line\" > got.tmp; mv got.tmp got", " >/dev/null"))
	time.Sleep(300 * time.Millisecond)
	s.tmux("send-keys", "C-z")
	s.waitFor("Stopped")
	s.line("fg")
	time.Sleep(time.Second)
	s.line("for-the-command")
	if !waitUntil(func() bool { return e.Exists("got") }) {
		t.Fatalf("the command never finished; screen:\n%s", s.screen())
	}
	if got := e.Read("got"); got != "got for-the-command\n" {
		t.Errorf("after fg the command read %q, want the line typed", got)
	}
}

// TestCtrlZWithPTY: with the keyboard and the screen on the terminal the
// command has a PTY of its own, where Ctrl-Z is a byte for its line
// discipline. It must stop the command and give the shell its terminal
// back, as without fence, and fg must continue it. The command was a
// session leader whose parent (the init) is in another session: an
// orphaned process group, for which the kernel drops the terminal's
// SIGTSTP, so Ctrl-Z did nothing.
func TestCtrlZWithPTY(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	s := newTmuxShell(t, e, "pty")
	// The command also switches mouse reporting on, which must not stay
	// on for the shell once it has the terminal back.
	s.line(fenceLine(e, "printf '\\033[?1000h'; test -t 0 && test -t 1 && echo started-on-a-pty-$((6*7)); sleep 1.5; echo done > ptyz", ""))
	s.waitFor("started-on-a-pty-42")
	if got := strings.TrimSpace(s.tmux("display-message", "-p", "#{mouse_any_flag}")); got != "1" {
		t.Fatalf("control: tmux did not see the command switch mouse reporting on (%q)", got)
	}
	s.tmux("send-keys", "C-z")
	s.waitFor("Stopped")
	if got := strings.TrimSpace(s.tmux("display-message", "-p", "#{mouse_any_flag}")); got != "0" {
		t.Errorf("mouse reporting the stopped command switched on stayed on for the shell")
	}
	stoppedUntilFg(t, e, s, "ptyz", 2500*time.Millisecond)
}

// TestSelfStopFollowed: a command without a PTY that stops itself stops
// fence too, so that the shell gets its terminal back, and fg continues
// it. fence used to wait until something continued the command.
func TestSelfStopFollowed(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	s := newTmuxShell(t, e, "selfstop")
	s.line(fenceLine(e, "kill -STOP $$; echo resumed > selfstop", " >/dev/null"))
	s.waitFor("Stopped")
	stoppedUntilFg(t, e, s, "selfstop", 500*time.Millisecond)
}

// TestPagerGetsTheKeyboard: with the output piped into a pager (`fence --
// git log | less`), the pager reads the keyboard, as without fence: fence
// must not relay it to the command. Review of the eleventh session: with
// a PTY for every run with the keyboard on a terminal, fence took the
// pager's keys (q did not quit less).
func TestPagerGetsTheKeyboard(t *testing.T) {
	_, err := exec.LookPath("less")
	sandboxtest.Require(t, err == nil, "less not installed")
	e := sandboxtest.New(t, writeDot)
	s := newTmuxShell(t, e, "pager")
	// The command outlives the pager: the terminal modes fence saved at
	// start (the pager's, when it was quicker) must not come back after
	// the pager restored its own (second red team round: no echo after).
	s.line(fenceLine(e, "seq 1 500; sleep 1.5", " | LESS= less; echo pager-ended-$((6*7))"))
	s.waitFor("\n3\n4\n")
	// Under load less may not read yet: q again, as a user would.
	ended := false
	for i := 0; i < 3 && !ended; i++ {
		time.Sleep(300 * time.Millisecond)
		s.tmux("send-keys", "q")
		ended = s.shows("pager-ended-42", 3*time.Second)
	}
	if !ended {
		t.Fatalf("q did not reach less; screen:\n%s", s.screen())
	}
	s.line("stty -a | grep -q -e ' -icanon' -e ' -echo ' && echo TTY-BROKEN || echo TTY-SANE")
	if !s.shows("\nTTY-SANE", 5*time.Second) {
		t.Errorf("the terminal was left without canonical mode or echo; screen:\n%s", s.screen())
	}
}
