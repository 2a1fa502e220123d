package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/fence-dev/fence/cmd/internal/cli"
	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary double as the fence binary: testscript
// runs it as "fence" from $PATH, and the sandbox re-executes it as its init.
func TestMain(m *testing.M) {
	if cli.IsInit(os.Args) {
		os.Exit(cli.Init(os.Args))
	}
	testscript.Main(m, map[string]func(){"fence": fenceMain})
}

// fenceMain is main() plus a test-only hook: the system policy is read from
// $FENCE_TEST_SYSTEM_POLICY so that scripts never depend on the host's
// /etc/fence. The real binary has no such switch: a user variable must not be
// able to drop the administrator's denies.
func fenceMain() {
	if cli.IsInit(os.Args) {
		os.Exit(cli.Init(os.Args))
	}
	if p := os.Getenv("FENCE_TEST_SYSTEM_POLICY"); p != "" {
		config.SystemPolicyFile = p
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// TestScript runs every testdata/script/*.txtar. Each script gets its own
// HOME and XDG directories under $WORK, and its own system policy path.
//
// Extra commands:
//
//	exitcode N PROG [ARGS...]   run PROG and require exit status N (output
//	                            is kept for stdout/stderr checks)
//	chmod MODE FILE             change a file's mode (octal)
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
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
			env.Setenv("FENCE_TEST_SYSTEM_POLICY", filepath.Join(work, "etc", "fence", "policy.toml"))
			env.Setenv("FENCE_HOOK", "off")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitcode,
			"chmod":    cmdChmod,
		},
	})
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
