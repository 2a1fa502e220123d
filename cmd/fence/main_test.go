package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fence-dev/fence/cmd/internal/cli"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain builds the fence binary the scripts run: CGO_ENABLED=0 (the
// sandbox refuses cgo builds, which cannot restrict every thread) and with
// the fence_testhooks tag (the system policy path comes from
// $FENCE_TEST_SYSTEM_POLICY). It goes first in $PATH, so "fence" and
// "exec fence" both run it, and /proc/self/exe is the real binary when the
// sandbox re-executes itself.
func TestMain(m *testing.M) {
	if cli.IsInit(os.Args) {
		os.Exit(cli.Init(os.Args))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fence-testbin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "the scripts need the go command to build fence:", err)
		return 1
	}
	build := exec.Command(goBin, "build", "-tags", "fence_testhooks", "-o", filepath.Join(dir, "fence"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build fence for the scripts: %v\n%s", err, out)
		return 1
	}
	os.Setenv("PATH", dir+string(filepath.ListSeparator)+os.Getenv("PATH"))
	return m.Run()
}

// TestScript runs every testdata/script/*.txtar. Each script gets its own
// HOME and XDG directories under $WORK, its own system policy path, and
// $NOTMP, an empty directory outside /tmp (removed afterwards).
//
// Extra commands:
//
//	fence ARGS...               exec fence ARGS... (the binary built above)
//	exitcode N PROG [ARGS...]   run PROG and require exit status N (output
//	                            is kept for stdout/stderr checks)
//	chmod MODE FILE             change a file's mode (octal)
//	cgroups                     create two cgroups (v2) below this test's own
//	                            and set CG_A, CG_B (their directories) and
//	                            CGPATH_A, CGPATH_B (as in /proc/PID/cgroup)
//	warm                        wait (up to 10s) until the running daemon
//	                            has a sandbox init booted ahead (replaces
//	                            stdout with the daemon's status)
func TestScript(t *testing.T) {
	testscript.Run(t, scriptParams("testdata/script"))
}

// TestScriptAlone runs testdata/script-alone/*.txtar: sandboxes that may
// write the whole host (allowWrite = ["/"] or ["/tmp"]). At a session's end
// fence moves to the quarantine every protected name that appeared under
// its writable roots during the session, whoever made it; run beside other
// tests, these took those tests' .fence.toml and .git metadata. They run
// only with FENCE_TEST_ALONE=1, which scripts/test.sh sets in a step of
// their own after every other test.
func TestScriptAlone(t *testing.T) {
	if os.Getenv("FENCE_TEST_ALONE") != "1" {
		t.Skip("sandboxes that may write the whole host run alone: FENCE_TEST_ALONE=1 go test ./cmd/fence -run TestScriptAlone (scripts/test.sh does)")
	}
	testscript.Run(t, scriptParams("testdata/script-alone"))
}

// scriptParams are the scripts' settings, for the scripts in dir.
func scriptParams(dir string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		UpdateScripts:       os.Getenv("FENCE_UPDATE_SCRIPTS") == "1",
		RequireExplicitExec: false,
		Setup: func(env *testscript.Env) error {
			work := env.WorkDir
			dirs := map[string]string{
				"HOME":            filepath.Join(work, "home"),
				"XDG_CONFIG_HOME": filepath.Join(work, "home", ".config"),
				"XDG_DATA_HOME":   filepath.Join(work, "home", ".local", "share"),
				"XDG_STATE_HOME":  filepath.Join(work, "home", ".local", "state"),
				"XDG_CACHE_HOME":  filepath.Join(work, "home", ".cache"),
				"XDG_RUNTIME_DIR": filepath.Join(work, "run"),
			}
			for k, d := range dirs {
				if err := os.MkdirAll(d, 0o700); err != nil {
					return err
				}
				env.Setenv(k, d)
			}
			// The sandbox gives programs a private /tmp, which hides $WORK:
			// a script that needs a home the sandbox sees as the host's
			// read-only files uses $NOTMP, a directory outside /tmp.
			notmp, err := os.MkdirTemp("/var/tmp", "fence-script-")
			if err != nil {
				return err
			}
			env.Defer(func() { os.RemoveAll(notmp) })
			env.Setenv("NOTMP", notmp)
			env.Setenv("FENCE_TEST_SYSTEM_POLICY", filepath.Join(work, "etc", "fence", "policy.toml"))
			env.Setenv("FENCE_HOOK", "off")
			// Each script's daemon lives in the script's own runtime dir.
			// Left to the default idle time, dozens of them would outlive
			// their scripts and hold the user's inotify instances (128 by
			// default), starving the next test package. A script that
			// needs a longer life sets FENCE_DAEMON_IDLE itself.
			env.Setenv("FENCE_DAEMON_IDLE", "3s")
			vars := append([]string(nil), env.Vars...)
			env.Defer(func() {
				stop := exec.Command("fence", "daemon", "stop")
				stop.Env = vars
				_ = stop.Run() // no daemon running is fine
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"fence":    cmdFence,
			"exitcode": cmdExitcode,
			"chmod":    cmdChmod,
			"warm":     cmdWarm,
			"cgroups":  cmdCgroups,
		},
		// [cgroupv2]: a cgroup v2 subtree this user may manage (systemd
		// delegates one to every user session; .ci/run makes one). Under
		// FENCE_TEST_STRICT=1 its absence fails the script.
		Condition: func(cond string) (bool, error) {
			if cond != "cgroupv2" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if _, _, err := ownCgroup(); err != nil {
				if os.Getenv("FENCE_TEST_STRICT") == "1" {
					return false, fmt.Errorf("needs a cgroup v2 subtree this user may manage (FENCE_TEST_STRICT=1): %v", err)
				}
				return false, nil
			}
			return true, nil
		},
	}
}

func cmdFence(ts *testscript.TestScript, neg bool, args []string) {
	err := ts.Exec("fence", args...)
	switch {
	case err != nil && !neg:
		ts.Fatalf("fence: %v", err)
	case err == nil && neg:
		ts.Fatalf("unexpected fence success")
	}
}

func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: bad status %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exitcode: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

func cmdChmod(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: chmod MODE FILE")
	}
	mode, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		ts.Fatalf("chmod: bad mode %q", args[0])
	}
	ts.Check(os.Chmod(ts.MkAbs(args[1]), os.FileMode(mode)))
}

func cmdWarm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: warm")
	}
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ts.Exec("fence", "daemon", "status")
		last = ts.ReadFile("stdout")
		if strings.Contains(last, "warm sandbox init: ready") {
			return
		}
	}
	ts.Fatalf("no warm sandbox init after 10s; daemon status:\n%s", last)
}

// ownCgroup returns this process's cgroup v2 directory and path, if this
// user may create cgroups below it.
func ownCgroup() (dir, path string, err error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path = p
		}
	}
	if path == "" {
		return "", "", errors.New("no cgroup v2 in /proc/self/cgroup")
	}
	out, err := exec.Command("findmnt", "-n", "-t", "cgroup2", "-o", "TARGET").Output()
	if err != nil {
		return "", "", fmt.Errorf("no cgroup v2 hierarchy mounted: %v", err)
	}
	mnt := strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	dir = filepath.Join(mnt, path)
	probe, err := os.MkdirTemp(dir, "probe-")
	if err != nil {
		return "", "", fmt.Errorf("cannot create a cgroup below %s: %v", dir, err)
	}
	os.Remove(probe)
	return dir, path, nil
}

func cmdCgroups(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: cgroups")
	}
	dir, path, err := ownCgroup()
	if err != nil {
		ts.Fatalf("cgroups: %v", err)
	}
	for _, name := range []string{"A", "B"} {
		d, err := os.MkdirTemp(dir, "fence-script-")
		if err != nil {
			ts.Fatalf("cgroups: %v", err)
		}
		ts.Defer(func() {
			// Its processes may still be exiting.
			for i := 0; i < 50 && os.Remove(d) != nil; i++ {
				time.Sleep(20 * time.Millisecond)
			}
		})
		ts.Setenv("CG_"+name, d)
		ts.Setenv("CGPATH_"+name, filepath.Join(path, filepath.Base(d)))
	}
}
