package shelltest

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var (
	fenceBin string // the fence binary under test
	baseDir  string // where test homes live: not under /tmp, which every sandbox replaces
	tmuxSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	home, err := os.UserHomeDir()
	if err != nil || home == "" || home == "/" {
		fmt.Fprintln(os.Stderr, "shelltest: no home directory")
		return 1
	}
	baseDir, err = os.MkdirTemp(filepath.Join(home, ".cache"), "fence-shelltest-")
	if err != nil {
		if err = os.MkdirAll(filepath.Join(home, ".cache"), 0o700); err == nil {
			baseDir, err = os.MkdirTemp(filepath.Join(home, ".cache"), "fence-shelltest-")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "shelltest:", err)
			return 1
		}
	}
	defer os.RemoveAll(baseDir)
	fenceBin = filepath.Join(baseDir, "fence")
	build := exec.Command("go", "build", "-o", fenceBin, "github.com/fence-dev/fence/cmd/fence")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "shelltest: build fence: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// skipOrFail skips a test for a missing tool, or fails it in strict mode.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("FENCE_TEST_STRICT") == "1" {
		t.Fatalf("strict mode: "+format, args...)
	}
	t.Skipf(format, args...)
}

// env is one tmux server (its own socket) running one interactive shell
// with a private HOME and XDG directories whose rc file evaluates the hook.
type env struct {
	t     *testing.T
	shell string
	sock  string
	home  string
	vars  []string
}

func newEnv(t *testing.T, shell string) *env {
	t.Helper()
	for _, tool := range []string{"tmux", shell} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%s not installed", tool)
		}
	}
	shellPath, _ := exec.LookPath(shell)
	home, err := os.MkdirTemp(baseDir, shell+"-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o755)
	e := &env{t: t, shell: shell, home: home, sock: fmt.Sprintf("fence-test-%d-%d", os.Getpid(), tmuxSeq.Add(1))}
	e.vars = []string{
		"HOME=" + home,
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"SHELL=" + shellPath,
		"TERM=xterm-256color",
		"LANG=C.UTF-8",
		"USER=" + os.Getenv("USER"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local/share"),
		"XDG_STATE_HOME=" + filepath.Join(home, ".local/state"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_RUNTIME_DIR=" + filepath.Join(home, "run"),
	}
	for _, d := range []string{".config/fish", ".local/share", ".local/state", ".cache", "run", "proj", "proj/sub", "other", "plain", "broken"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(home, "run"), 0o700)
	for _, p := range []string{"proj", "other"} {
		e.write(p+"/.fence.toml", "[filesystem]\nallowWrite = [\".\"]\n")
	}
	q := shQuote(fenceBin)
	switch shell {
	case "bash":
		e.write(".bashrc", "PS1='\\w \\$ '\nHISTFILE=~/.bash_history\neval \"$("+q+" hook bash)\"\n")
	case "zsh":
		e.write(".zshrc", "PROMPT='%~ %# '\nHISTFILE=~/.zsh_history\neval \"$("+q+" hook zsh)\"\n")
	case "fish":
		e.write(".config/fish/config.fish", "set -g fish_greeting ''\nfunction fish_prompt; printf '%s> ' $PWD; end\n"+fenceBin+" hook fish | source\n")
	}
	args := []string{"-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", "-c", home, "--"}
	args = append(args, "env", "-i")
	args = append(args, e.vars...)
	// If the shell dies, say so on the screen instead of taking the tmux
	// server with it.
	args = append(args, "/bin/sh", "-c", `"$0" -i; echo "SHELL EXITED $?"; sleep 600`, shellPath)
	e.tmux(args...)
	e.tmux("set-option", "-g", "set-clipboard", "on")
	t.Cleanup(func() {
		// The session daemon started on demand for this HOME.
		stop := exec.Command(fenceBin, "daemon", "stop")
		stop.Env = e.vars
		stop.Run()
		if t.Failed() {
			t.Logf("screen at failure:\n%s", e.capture())
		}
		exec.Command("tmux", "-L", e.sock, "kill-server").Run()
		os.RemoveAll(home)
	})
	return e
}

// historyHas says whether the project's history, kept by fence for the
// fenced shell, has a line containing s.
func (e *env) historyHas(s string) bool {
	hist, _ := filepath.Glob(e.path(".local/state/fence-shell/history/proj-*/*"))
	if e.shell == "fish" {
		hist, _ = filepath.Glob(e.path(".local/state/fence-shell/history/proj-*/fish/fish_history"))
	}
	for _, h := range hist {
		if b, err := os.ReadFile(h); err == nil && strings.Contains(string(b), s) {
			return true
		}
	}
	e.t.Logf("%q is in none of the history files %q", s, hist)
	return false
}

// endShell is a program started from the fenced shell that kills or stops
// the shell (the signal named in its argument) a second later, from the
// background.
const endShell = `import os, signal, sys, time
shell = os.getppid()
if os.fork():
    sys.exit(0)
time.sleep(1)
os.kill(shell, getattr(signal, "SIG" + sys.argv[1]))
`

// forgeHandoff is what a program run in the fenced shell could leave
// behind to choose where the outer shell goes when the user leaves: it
// waits for the inner shell to write a handoff file, then writes its own
// directory (argv[1]) over it. Where the shell leaves by stopping itself
// there is no such file, and it just waits to be killed.
const forgeHandoff = `import ctypes, glob, os, sys, time
decoy = (sys.argv[1] + "\n").encode()
files = glob.glob(os.path.expanduser("~/.local/state/fence-shell/sessions/*/handoff"))
if not files:
    print("forger: no handoff file", flush=True)
    time.sleep(600)
    sys.exit()
libc = ctypes.CDLL(None)
fd = libc.inotify_init()
for f in files:
    libc.inotify_add_watch(fd, f.encode(), 0x8)  # IN_CLOSE_WRITE
outs = [os.open(f, os.O_WRONLY) for f in files]
print("forger: armed", flush=True)
while True:
    os.read(fd, 4096)
    for o in outs:
        os.pwrite(o, decoy, 0)
`

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (e *env) write(rel, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.home, rel), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) tmux(args ...string) string {
	e.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", e.sock}, args...)...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

func (e *env) capture() string {
	out, _ := exec.Command("tmux", "-L", e.sock, "capture-pane", "-p", "-J", "-S", "-500").CombinedOutput()
	return string(out)
}

// line types a command line and Enter.
func (e *env) line(s string) {
	e.t.Helper()
	e.tmux("send-keys", "-l", s)
	e.tmux("send-keys", "Enter")
}

// keys sends tmux key names (C-c, C-z, Enter).
func (e *env) keys(k ...string) {
	e.t.Helper()
	e.tmux(append([]string{"send-keys"}, k...)...)
}

// mark returns a fresh marker and the command line that prints it with the
// value of expr (a shell expression); the typed line never contains the
// printed text, so a match proves the command ran.
func (e *env) mark(expr string) (string, string) {
	n := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	return "MK" + n + "=", fmt.Sprintf("printf 'MK%%s=%%s\\n' %s %s", n, expr)
}

// run types a command that prints expr and returns what it printed.
func (e *env) run(expr string) string {
	e.t.Helper()
	m, cmd := e.mark(expr)
	e.line(cmd)
	re := regexp.MustCompile(regexp.QuoteMeta(m) + `(.*)`)
	var got string
	e.waitFunc("output of "+expr, func(screen string) bool {
		for _, l := range strings.Split(screen, "\n") {
			if sm := re.FindStringSubmatch(l); sm != nil && !strings.Contains(l, "printf") {
				got = strings.TrimRight(sm[1], " ")
				return true
			}
		}
		return false
	})
	return got
}

const waitLimit = 20 * time.Second

func (e *env) waitFunc(what string, ok func(string) bool) {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		s := e.capture()
		if ok(s) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFormat waits until tmux expands format to want (the pane's modes).
func (e *env) waitFormat(what, format, want string) {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		got := strings.TrimSpace(e.tmux("display-message", "-p", format))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s: %s is %q, want %q", what, format, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitText waits until the screen contains s.
func (e *env) waitText(s string) {
	e.t.Helper()
	e.waitFunc(fmt.Sprintf("%q on screen", s), func(screen string) bool { return strings.Contains(screen, s) })
}

// clear clears the screen and tmux's history, so later waits see only new
// output.
func (e *env) clear() {
	e.t.Helper()
	e.keys("C-l")
	e.tmux("clear-history")
	time.Sleep(100 * time.Millisecond)
}

func (e *env) fence(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(fenceBin, args...)
	cmd.Env = e.vars
	cmd.Dir = e.home
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("fence %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// waitPrompt waits until the last line on screen is a prompt of the fenced
// shell (inside) or of the outer one. Keys typed while fence hands the
// terminal back are lost (like typeahead into any shell that exits), so a
// test waits for the prompt after every enter and leave.
func (e *env) waitPrompt(inside bool) {
	e.t.Helper()
	suffix := map[string]string{"bash": "$", "zsh": "%", "fish": ">"}[e.shell]
	e.waitFunc(fmt.Sprintf("a prompt (inside=%v)", inside), func(screen string) bool {
		lines := strings.Split(strings.TrimRight(screen, "\n "), "\n")
		last := strings.TrimSpace(lines[len(lines)-1])
		return strings.HasSuffix(last, suffix) && strings.HasPrefix(last, "(fence:") == inside
	})
}

func (e *env) path(rel string) string { return filepath.Join(e.home, rel) }

// inside reports whether the shell at the prompt is the fenced one.
func (e *env) inside() bool {
	e.t.Helper()
	return e.run(e.fishify(`"${FENCE_PROMPT:-none}"`)) != "none"
}

func (e *env) fishify(s string) string {
	if e.shell != "fish" {
		return s
	}
	s = strings.ReplaceAll(s, `"${FENCE_PROMPT:-none}"`, `(set -q FENCE_PROMPT; and echo $FENCE_PROMPT; or echo none)`)
	return s
}

func TestShells(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) { testShell(t, sh) })
	}
}

// TestShellsHomeWritable: a fenced shell whose project may write all of ~
// cannot touch fence shell's session files or another project's history,
// which fence reads and writes on the host (a link planted there was
// followed: sessions/ to the user's files, which the next fence shell
// deleted; a notice file to ~/.ssh/authorized_keys, which fence
// overwrote). Its own history is still saved: bash appends to it, zsh and
// fish replace it by rename.
func TestShellsHomeWritable(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) { testShellHomeWritable(t, sh) })
	}
}

func testShellHomeWritable(t *testing.T, shell string) {
	e := newEnv(t, shell)
	e.run("ready")
	for _, d := range []string{"wide", ".ssh", ".local/state/fence-shell/history/other-1"} {
		os.MkdirAll(e.path(d), 0o700)
	}
	e.write("wide/.fence.toml", "[filesystem]\nallowWrite = [\"~\"]\n")
	e.write(".ssh/authorized_keys", "ssh-ed25519 AAAA user\n")
	e.write(".local/state/fence-shell/history/other-1/history", "other\n")
	e.fence("allow", e.path("wide"))
	e.line("cd wide")
	e.waitPrompt(true)
	try := func(cmd string) string {
		t.Helper()
		return e.run(`"$(` + cmd + ` 2>/dev/null && echo wrote || echo denied)"`)
	}
	if got := try(`echo x > ~/home.txt`); got != "wrote" {
		t.Fatalf("control: writing ~ from a project with allowWrite = [\"~\"]: %s", got)
	}
	for _, cmd := range []string{
		`echo x > ~/.local/state/fence-shell/sessions/planted`,
		`ln -sfn ~/.ssh/authorized_keys ~/.local/state/fence-shell/sessions/*/notice`,
		`echo evil >> ~/.local/state/fence-shell/history/other-1/history`,
		`mkdir ~/.local/state/fence-shell/history/planted`,
	} {
		if got := try(cmd); got != "denied" {
			t.Errorf("%s: %s", cmd, got)
		}
	}
	// fence rewrites the notice file when the config changes: still the
	// file it made, not the keys.
	e.write("wide/.fence.toml", "[filesystem]\nallowWrite = [\"~\", \"/var/tmp\"]\n")
	time.Sleep(400 * time.Millisecond)
	e.keys("Enter")
	const keys = "ssh-ed25519 AAAA user\n"
	keysNow := func() string { b, _ := os.ReadFile(e.path(".ssh/authorized_keys")); return string(b) }
	e.waitFunc("the notice, or the keys overwritten", func(s string) bool {
		return strings.Contains(s, "fence reload") || keysNow() != keys
	})
	if got := keysNow(); got != keys {
		t.Fatalf("~/.ssh/authorized_keys overwritten with the notice: %q", got)
	}
	e.line("echo history-wide-" + shell)
	e.line("exit")
	e.waitPrompt(false)
	if b, _ := os.ReadFile(e.path(".local/state/fence-shell/history/other-1/history")); string(b) != "other\n" {
		t.Errorf("another project's history changed: %q", b)
	}
	hist, _ := filepath.Glob(e.path(".local/state/fence-shell/history/wide-*/*"))
	if shell == "fish" {
		hist, _ = filepath.Glob(e.path(".local/state/fence-shell/history/wide-*/fish/fish_history"))
	}
	saved := false
	for _, h := range hist {
		if b, err := os.ReadFile(h); err == nil && strings.Contains(string(b), "history-wide-"+shell) {
			saved = true
		}
	}
	if !saved {
		t.Errorf("the session's own history was not saved (files %q)", hist)
	}
}

// leftModes asks tmux for insert mode, origin mode and the top of the
// scroll region: "1 1 2" after the test's modesOn. (Not the keypad: zsh's
// line editor switches it on itself.)
const leftModes = "#{insert_flag} #{origin_flag} #{scroll_region_upper}"

func testShell(t *testing.T, shell string) {
	e := newEnv(t, shell)
	fp := func(s string) string { return e.fishify(s) }
	prompt := func() string { return e.run(fp(`"${FENCE_PROMPT:-none}"`)) }
	pwd := func() string { return e.run(`"$PWD"`) }
	e.run("ready")

	// Controls: the attacks below do work against an unsandboxed shell
	// in this very terminal, so their tests can fail.
	secret0 := "FENCE-CONTROL-" + shell
	e.line(`printf '\033]52;c;` + base64.StdEncoding.EncodeToString([]byte(secret0)) + `\a'`)
	e.run("control-osc")
	if !strings.Contains(e.buffers(), secret0) {
		t.Fatalf("control: OSC 52 from an unsandboxed shell did not reach tmux; the OSC 52 test could not fail")
	}
	e.write("control.py", "import fcntl, termios\nfor c in b\"printf 'MK%s\\\\n' CONTROL-INJECTED\\n\":\n    fcntl.ioctl(0, termios.TIOCSTI, bytes([c]))\n")
	e.line(`printf '\033[?1000h'`)
	e.run("mouse-on")
	if got := e.tmux("display-message", "-p", "#{mouse_any_flag}"); strings.TrimSpace(got) != "1" {
		t.Fatalf("control: mouse reporting from an unsandboxed shell not seen by tmux (%q)", got)
	}
	e.line(`printf '\033[?1000l'`)
	const modesOn = `\033[4h\033[?6h\033[3;4r` // insert mode, origin mode, a scroll region
	e.line(`printf '` + modesOn + `'`)
	e.waitFormat("control: modes from an unsandboxed shell seen by tmux", leftModes, "1 1 2")
	e.line(`printf '\033[4l\033[?6l\033[r'`)
	e.waitFormat("control: modes switched off again", leftModes, "0 0 0")
	e.keys("C-l")
	if b, _ := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti"); strings.TrimSpace(string(b)) != "0" {
		e.line("python3 " + e.path("control.py"))
		e.waitText("MKCONTROL-INJECTED")
	}

	// Untrusted project: enters with the user policy and says what
	// `fence allow` would grant.
	e.line("cd proj")
	e.waitPrompt(true)
	e.waitText("not trusted")
	e.waitText("fence allow")
	if got := prompt(); got != "(fence:proj)" {
		t.Fatalf("after cd proj: FENCE_PROMPT %q, want (fence:proj)", got)
	}
	if got := e.run(`"$(echo x > inside.txt 2>/dev/null && echo wrote || echo denied)"`); got != "denied" {
		t.Errorf("untrusted project: write in the project: %s", got)
	}

	// `fence allow` inside: the trust store is read-only in the sandbox, so
	// the client asks outside, on the real terminal, and restarts the shell
	// in place. "n" keeps the user policy; "y" trusts and applies it.
	const question = "trust it and restart the shell with it? [y/N]"
	allowInside := func(answer, outcome string) {
		t.Helper()
		asked, told := strings.Count(e.capture(), question), strings.Count(e.capture(), outcome)
		e.line("fence allow")
		e.waitFunc("the fence allow question", func(s string) bool { return strings.Count(s, question) > asked })
		e.line(answer)
		e.waitFunc(fmt.Sprintf("%q after answering %q", outcome, answer), func(s string) bool { return strings.Count(s, outcome) > told })
		e.waitPrompt(true)
	}
	allowInside("n", "not trusted; restarting")
	if got := e.run(`"$(echo x > inside.txt 2>/dev/null && echo wrote || echo denied)"`); got != "denied" {
		t.Errorf("after answering no to fence allow: write in the project: %s", got)
	}
	allowInside("y", "restarting the shell with its policy")
	if got := e.run(`"$(echo x > inside.txt 2>/dev/null && echo wrote || echo denied)"`); got != "wrote" {
		t.Errorf("after fence allow inside: write in the project: %s", got)
	}
	if got := pwd(); got != e.path("proj") {
		t.Errorf("after fence allow inside: PWD %q, want %q", got, e.path("proj"))
	}
	e.line("rm inside.txt")
	e.fence("deny", e.path("proj"))

	// A program inside that kills the shell ends its sandbox, but does not
	// leave the user typing into the outer, unsandboxed shell in the
	// project: a new sandboxed shell starts, saying why. Stopped again
	// within seconds (the prompt hook stops it only outside the project),
	// fence gives up and says so. Red team of the eleventh session: both
	// fell back to the outer shell without a word.
	e.write("end-shell.py", endShell)
	// SIGHUP: zsh and fish exit normally on it, which fence could not
	// tell from the user's exit (second red team round).
	e.line("python3 " + e.path("end-shell.py") + " HUP")
	e.waitText("ended without you leaving (killed by SIG")
	e.waitText("starting a new one")
	e.waitPrompt(true)
	if got := prompt(); got != "(fence:proj)" {
		t.Fatalf("after the shell was killed: FENCE_PROMPT %q, want a new sandboxed shell", got)
	}
	e.line("python3 " + e.path("end-shell.py") + " STOP")
	e.waitText("ended again without you leaving (something in the sandbox stopped it)")
	e.waitText("UNSANDBOXED shell in")
	e.waitPrompt(false)
	if got := prompt(); got != "none" {
		t.Fatalf("after giving up: FENCE_PROMPT %q", got)
	}
	e.line("cd ..")
	e.waitPrompt(false)
	e.line("cd proj")
	e.waitPrompt(true)
	// A hangup of fence (its terminal closing) ends the session: bash dies
	// of the SIGHUP fence passes on, which is not something inside
	// killing the shell (review of the eleventh session: fence started a
	// new shell on a terminal that was gone).
	restarts := strings.Count(e.capture(), "starting a new one")
	paneTTY := strings.TrimPrefix(strings.TrimSpace(e.tmux("display-message", "-p", "#{pane_tty}")), "/dev/")
	out, err := exec.Command("pgrep", "-t", paneTTY, "-f", "shell --hook-result").Output()
	if err != nil {
		t.Fatalf("the fence client on the pane's terminal (%s): %v", paneTTY, err)
	}
	for _, pid := range strings.Fields(string(out)) {
		exec.Command("kill", "-HUP", pid).Run()
	}
	// The outer prompt may come on the killed shell's prompt line.
	time.Sleep(500 * time.Millisecond)
	e.keys("Enter")
	e.waitPrompt(false)
	if n := strings.Count(e.capture(), "starting a new one"); n != restarts {
		t.Errorf("a hangup of fence started a new sandboxed shell:\n%s", e.capture())
	}
	e.line("cd ..")
	e.waitPrompt(false)
	e.line("cd proj")
	e.waitPrompt(true)

	// Leave by cd: the outer shell ends up in the parent directory, and
	// nothing else in the sandbox can send it elsewhere (ATTACKS.md H-04):
	// a process left running inside overwrites any handoff file the
	// moment the shell writes it, with a directory that exists outside.
	// What was typed in the session is in its history afterwards.
	e.write("forge.py", forgeHandoff)
	e.line("python3 " + e.path("forge.py") + " " + e.path("plain") + " </dev/null 2>&1 &")
	e.waitText("forger: ")
	e.line("echo history-before-leave")
	e.line("cd ..")
	e.waitPrompt(false)
	if got := prompt(); got != "none" {
		t.Fatalf("after cd ..: still inside (%q)", got)
	}
	if got := pwd(); got != e.home {
		t.Fatalf("after cd ..: outer PWD %q, want %q (ATTACKS.md H-04)", got, e.home)
	}
	if !e.historyHas("history-before-leave") {
		t.Errorf("leaving by cd lost the session's history")
	}

	// Trusted: project writes allowed, outside writes denied.
	e.fence("allow", e.path("proj"))
	e.line("cd proj/sub")
	e.waitPrompt(true)
	if got := prompt(); got != "(fence:proj)" {
		t.Fatalf("cd proj/sub: FENCE_PROMPT %q", got)
	}
	if got := pwd(); got != e.path("proj/sub") {
		t.Errorf("inner PWD %q, want %q", got, e.path("proj/sub"))
	}
	sessID := e.run(`"$FENCE_SESSION"`)
	if sessID == "" {
		t.Errorf("FENCE_SESSION not exported inside")
	}
	// cd within the project stays in the same session.
	e.line("cd .. && cd sub && cd ..")
	if got := e.run(`"$FENCE_SESSION $PWD"`); got != sessID+" "+e.path("proj") {
		t.Errorf("after cd within the project: %q, want the same session in %s", got, e.path("proj"))
	}
	e.line("cd sub")
	e.line("echo ok > ../inside.txt; echo bad > ~/outside.txt")
	if got := e.run(fp(`"$(cat ../inside.txt)"`)); got != "ok" {
		t.Errorf("trusted project write: got %q", got)
	}
	if _, err := os.Stat(e.path("outside.txt")); err == nil {
		t.Errorf("a write outside the allowed paths reached the host")
	}
	if b, _ := os.ReadFile(e.path("proj/inside.txt")); string(b) != "ok\n" {
		t.Errorf("project write did not reach the host: %q", b)
	}

	// Window size follows the terminal.
	e.tmux("resize-window", "-x", "100", "-y", "30")
	// SIGWINCH reaches fence asynchronously: poll, within a deadline.
	for deadline := time.Now().Add(5 * time.Second); ; {
		got := e.run(fp(`"$(stty size)"`))
		if got == "30 100" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("stty size after resize: %q, want 30 100", got)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Job control: Ctrl-Z stops the foreground job, fg resumes it, Ctrl-C
	// reaches it.
	e.clear()
	e.line("sleep 60")
	time.Sleep(300 * time.Millisecond)
	e.keys("C-z")
	e.waitFunc("the job to stop", func(s string) bool {
		s = strings.ToLower(s)
		return strings.Contains(s, "stopped") || strings.Contains(s, "suspended")
	})
	e.line("fg")
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	e.keys("C-c")
	e.run("alive")
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Ctrl-C did not interrupt the job (%v)", d)
	}
	if !e.inside() {
		t.Fatalf("Ctrl-C ended the fenced shell")
	}

	// OSC 52 from inside never reaches the outer terminal (tmux would
	// store it as a paste buffer: set-clipboard on).
	secret := "FENCE-OSC52-" + shell
	b64 := base64.StdEncoding.EncodeToString([]byte(secret))
	e.line(`printf '\033]52;c;` + b64 + `\a'`)
	e.run("osc-sent")
	if bufs := e.buffers(); strings.Contains(bufs, secret) {
		t.Errorf("OSC 52 from the sandbox reached the terminal: %q", bufs)
	}

	// TIOCSTI from inside cannot type into the outer shell.
	inj := "printf 'MK%s\\n' INJECTED-" + shell
	e.write("inject.py", "import fcntl, termios\nfor c in b\""+strings.ReplaceAll(inj, `\`, `\\`)+"\\n\":\n    try: fcntl.ioctl(0, termios.TIOCSTI, bytes([c]))\n    except OSError as e: print('TIOCSTI', e.errno); break\n")
	e.line("python3 " + e.path("inject.py") + "; exit")
	e.waitPrompt(false)
	if got := prompt(); got != "none" {
		t.Fatalf("after exit: still inside (%q)", got)
	}
	time.Sleep(500 * time.Millisecond)
	if strings.Contains(e.capture(), "MKINJECTED-"+shell) {
		t.Errorf("TIOCSTI from the sandbox ran a command")
	}

	// History is per project, in the shell state directory, and survives
	// the session.
	if !e.historyHas("sleep 60") {
		t.Errorf("per-project history not saved")
	}
	if _, err := os.Stat(e.path(".bash_history")); err == nil && shell == "bash" {
		if b, _ := os.ReadFile(e.path(".bash_history")); strings.Contains(string(b), "sleep 60") {
			t.Errorf("the fenced shell's history went to the user's own history file")
		}
	}

	// exit stays in the root without re-entering until PWD leaves it.
	if got := pwd(); got != e.path("proj/sub") {
		t.Errorf("after exit: PWD %q, want %q", got, e.path("proj/sub"))
	}
	e.line("cd ..")
	time.Sleep(300 * time.Millisecond)
	if got := prompt(); got != "none" {
		t.Fatalf("re-entered the root after exit (%q)", got)
	}
	e.line("cd sub")
	time.Sleep(300 * time.Millisecond)
	if got := prompt(); got != "none" {
		t.Fatalf("re-entered a subdirectory of the root after exit (%q)", got)
	}
	e.line("cd ../../plain")
	if got := prompt(); got != "none" {
		t.Fatalf("entered a directory without .fence.toml (%q)", got)
	}
	e.line("cd ../proj")
	e.waitPrompt(true)
	if got := prompt(); got != "(fence:proj)" {
		t.Fatalf("no re-entry after leaving: %q", got)
	}

	// Inside: nesting refused; a live config change is announced at the
	// next prompt; fence reload restarts in place with the new policy;
	// Ctrl-D leaves like exit.
	e.clear()
	e.line("fence shell")
	e.waitText("already inside a fence session")
	if !e.inside() {
		t.Fatalf("the refused nested shell ended the session")
	}
	// A shell started inside runs the user's rc (and so the hook), which
	// must not try to enter anything.
	fenceLines := regexp.MustCompile(`(?m)^fence: `)
	before := len(fenceLines.FindAllString(e.capture(), -1))
	e.line(shell)
	time.Sleep(500 * time.Millisecond)
	e.line("exit")
	e.waitPrompt(true)
	if s := e.capture(); len(fenceLines.FindAllString(s, -1)) != before {
		t.Errorf("a subshell inside tried to enter a sandbox:\n%s", s)
	}
	e.write("proj/.fence.toml", "[filesystem]\nallowWrite = []\n")
	time.Sleep(400 * time.Millisecond)
	e.keys("Enter")
	e.waitText("fence reload")
	e.line("fence reload")
	e.waitText("reloading the sandbox")
	e.waitPrompt(true)
	if got := pwd(); got != e.path("proj") {
		t.Errorf("after reload: PWD %q, want %q", got, e.path("proj"))
	}
	if got := e.run(fp(`"$(echo x > reload.txt 2>/dev/null && echo wrote || echo denied)"`)); got != "denied" {
		t.Errorf("after reload with a tightened policy, a project write: %s", got)
	}
	e.keys("C-d")
	e.waitPrompt(false)
	if got := pwd(); got != e.path("proj") {
		t.Errorf("after Ctrl-D: PWD %q", got)
	}

	// A project whose config is broken: fence says why once, and the
	// outer shell keeps working without retrying at every prompt.
	e.write("broken/.fence.toml", "[network\n")
	e.clear()
	e.line("cd ../broken")
	e.waitPrompt(false)
	e.keys("Enter")
	e.keys("Enter")
	if got := pwd(); got != e.path("broken") {
		t.Errorf("broken project: PWD %q", got)
	}
	if n := strings.Count(e.capture(), ".fence.toml:1"); n != 1 {
		t.Errorf("broken project: error shown %d times, want once:\n%s", n, e.capture())
	}

	// cd into another root switches sandboxes.
	e.line("cd ../proj")
	e.waitPrompt(true)
	e.fence("allow", e.path("other"))
	e.line("cd ../other")
	time.Sleep(300 * time.Millisecond)
	e.waitPrompt(true)
	if got := prompt(); got != "(fence:other)" {
		t.Fatalf("switch to other: FENCE_PROMPT %q", got)
	}
	if got := pwd(); got != e.path("other") {
		t.Errorf("switch: PWD %q", got)
	}
	// A blocked request inside; the summary is printed when the shell
	// exits (the proxy answers 403 without resolving the name).
	e.line("curl -s -o /dev/null -w 'HTTP%{http_code}\\n' http://blocked.fence-test.example/")
	e.waitText("HTTP403")
	// Modes a program inside leaves on are switched off at exit (T-09).
	e.line(`printf '\033[?1000h\033[?1049h` + modesOn + `'; exit`)
	e.waitPrompt(false)
	e.waitFormat("alternate screen, mouse reporting, insert mode, origin mode and scroll region off after exit",
		"#{alternate_on} #{mouse_any_flag} "+leftModes, "0 0 0 0 0")
	e.waitText("blocked 1 connection")
	if got := prompt(); got != "none" {
		t.Fatalf("exit from other: still inside (%q)", got)
	}
	if got := pwd(); got != e.path("other") {
		t.Errorf("after exit from other: PWD %q", got)
	}
}

func (e *env) buffers() string {
	out, _ := exec.Command("tmux", "-L", e.sock, "list-buffers", "-F", "#{buffer_sample}").CombinedOutput()
	return string(out)
}
