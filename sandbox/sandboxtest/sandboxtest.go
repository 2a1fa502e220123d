// Package sandboxtest runs the real fence binary against throwaway homes
// and projects, for integration and attack tests. Every test that uses it
// runs the binary as the current (unprivileged) user, exactly as a user
// would, and can run the same shell snippet without the sandbox to prove
// that the snippet does what the test says (a security test must be able
// to fail).
package sandboxtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type built struct {
	once sync.Once
	path string
	err  error
}

// target is a main package and its build tags.
type target struct{ pkg, tags string }

var binaries = map[target]*built{
	{"./cmd/fence", ""}: {}, {"./cmd/fence", "fence_testhooks"}: {}, {"./sandbox/sandboxtest/driver", ""}: {},
}

// build builds a main package of this module with CGO_ENABLED=0, once per
// test binary.
func build(t testing.TB, pkg, tags string) string {
	t.Helper()
	b := binaries[target{pkg, tags}]
	b.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp(baseDir(), "fence-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-tags", tags, "-o", b.path, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = errors.New("go build " + pkg + ": " + err.Error() + "\n" + string(out))
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Cleanup removes the binaries built by [Fence] and [Driver]; call it from
// TestMain after m.Run.
func Cleanup() {
	for _, b := range binaries {
		if b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
	}
}

// Fence returns the path of a fence binary built from this checkout with
// CGO_ENABLED=0 (the sandbox refuses cgo builds), built once per test
// binary.
func Fence(t testing.TB) string { return build(t, "./cmd/fence", "") }

// FenceWithTestHooks is [Fence] built with the fence_testhooks tag: the
// FENCE_TEST_* variables of sandbox/testhooks_linux.go work in it.
func FenceWithTestHooks(t testing.TB) string { return build(t, "./cmd/fence", "fence_testhooks") }

// Driver returns the path of sandboxtest/driver, a minimal program around
// sandbox.Start (flags -tty -rows -cols, then the command).
func Driver(t testing.TB) string { return build(t, "./sandbox/sandboxtest/driver", "") }

// baseDir is where test homes and projects live: not under /tmp, which the
// sandbox replaces with a private one (a test home there would vanish
// inside the sandbox and make read tests pass for the wrong reason).
func baseDir() string {
	if d := os.Getenv("FENCE_TEST_DIR"); d != "" {
		os.MkdirAll(d, 0o700)
		return d
	}
	if c, err := os.UserCacheDir(); err == nil {
		d := filepath.Join(c, "fence-tests")
		if os.MkdirAll(d, 0o700) == nil {
			return d
		}
	}
	return os.TempDir()
}

// Require skips the test with reason, or fails it in strict mode
// (FENCE_TEST_STRICT=1, set by CI), where no test may skip.
func Require(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("FENCE_TEST_STRICT") == "1" {
		t.Fatalf("required for this test (FENCE_TEST_STRICT=1): %s", reason)
	}
	t.Skip(reason)
}

// Env is a throwaway user: a home directory, a project with a .fence.toml,
// and the environment to run fence in.
type Env struct {
	T       testing.TB
	Fence   string
	Base    string // holds everything below
	Home    string
	Project string
	Config  string // the project's .fence.toml
	Vars    []string
	// Init chooses how fence gets its sandbox init: "" as it would by
	// itself, "cold" cloned by fence (FENCE_WARM_INIT=0), "warm" booted
	// ahead by the daemon (each run waits for one and fails without).
	Init string

	stopsDaemon bool // a cleanup stops the daemon of the runtime directory
}

// New creates a home and a project whose .fence.toml holds config.
func New(t testing.TB, config string) *Env {
	t.Helper()
	if os.Getuid() == 0 && os.Getenv("FENCE_TEST_AS_ROOT") != "1" {
		t.Skip("sandbox integration tests run as an unprivileged user (as-fenceci go test ./sandbox/...)")
	}
	fence := Fence(t)
	base, err := os.MkdirTemp(baseDir(), "t-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Make everything removable (tests create read-only things).
		filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
		os.RemoveAll(base)
	})
	e := &Env{T: t, Fence: fence, Base: base, Home: filepath.Join(base, "home"), Project: filepath.Join(base, "home", "proj")}
	for _, d := range []string{e.Home, e.Project, filepath.Join(e.Home, ".config"), filepath.Join(e.Home, ".ssh")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.Config = filepath.Join(e.Project, ".fence.toml")
	e.Write(".fence.toml", config)
	e.Vars = []string{
		"HOME=" + e.Home,
		"PATH=" + os.Getenv("PATH"),
		"USER=" + os.Getenv("USER"),
		"LANG=C",
		"XDG_CONFIG_HOME=" + filepath.Join(e.Home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(e.Home, ".local", "share"),
		"XDG_STATE_HOME=" + filepath.Join(e.Home, ".local", "state"),
		"XDG_CACHE_HOME=" + filepath.Join(e.Home, ".cache"),
		"FENCE_HOOK=off",
	}
	if gc := os.Getenv("GOCACHE"); gc != "" {
		e.Vars = append(e.Vars, "GOCACHE="+gc)
	}
	return e
}

// Path returns the absolute path of rel: "~/x" is in the home, others are
// relative to the project.
func (e *Env) Path(rel string) string {
	if strings.HasPrefix(rel, "~/") {
		return filepath.Join(e.Home, rel[2:])
	}
	if filepath.IsAbs(rel) {
		return rel
	}
	return filepath.Join(e.Project, rel)
}

// Write creates a file (and its directories), see [Env.Path].
func (e *Env) Write(rel, content string) string {
	e.T.Helper()
	p := e.Path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.T.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.T.Fatal(err)
	}
	return p
}

// Read returns a file's content, or "<missing>".
func (e *Env) Read(rel string) string {
	b, err := os.ReadFile(e.Path(rel))
	if err != nil {
		return "<missing>"
	}
	return string(b)
}

// Exists reports whether rel exists (without following a final symlink).
func (e *Env) Exists(rel string) bool {
	_, err := os.Lstat(e.Path(rel))
	return err == nil
}

// Result is what a run produced.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Out is stdout and stderr together, for messages.
func (r Result) Out() string { return r.Stdout + r.Stderr }

// Run runs `fence -s .fence.toml [flags] -- args...` in the project.
func (e *Env) Run(flagsAndArgs ...string) Result {
	e.T.Helper()
	args := append([]string{"-s", e.Config}, flagsAndArgs...)
	return e.exec(e.Fence, args, nil)
}

// Sh runs script with sh -c inside the sandbox (fence -s .fence.toml -- sh -c script).
func (e *Env) Sh(script string) Result {
	e.T.Helper()
	return e.Run("--", "sh", "-c", script)
}

// Direct runs script with sh -c without any sandbox, in the same
// directory and environment: the control run of an attack test.
func (e *Env) Direct(script string) Result {
	e.T.Helper()
	return e.exec("/bin/sh", []string{"-c", script}, nil)
}

// RunEnv is [Env.Run] with extra environment variables.
func (e *Env) RunEnv(extra []string, flagsAndArgs ...string) Result {
	e.T.Helper()
	args := append([]string{"-s", e.Config}, flagsAndArgs...)
	return e.exec(e.Fence, args, extra)
}

func (e *Env) exec(path string, args, extra []string) Result {
	e.T.Helper()
	if path == e.Fence {
		switch e.Init {
		case "cold":
			extra = append(extra, "FENCE_WARM_INIT=0")
		case "warm":
			e.WaitWarm()
			extra = append(extra, "FENCE_WARM_INIT=require")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = e.Project
	cmd.Env = append(append([]string{}, e.Vars...), extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = nil
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Code = 128 + int(ws.Signal())
		} else {
			r.Code = ee.ExitCode()
		}
	default:
		e.T.Fatalf("run %s %q: %v", path, args, err)
	}
	if ctx.Err() != nil {
		e.T.Fatalf("run %s %q: timed out; output:\n%s", path, args, r.Out())
	}
	return r
}

// WaitWarm starts the daemon if needed and waits until it has a sandbox
// init booted ahead, as every run does when Init is "warm"; a test that
// runs fence by itself with FENCE_WARM_INIT=require calls it first (the
// daemon boots the next init after each run, and under load that can take
// longer than a client waits for it). Unless the test chose a runtime directory, the daemon
// is the test's own: a warm init is only handed to the binary that booted
// it, and other test packages build their own.
func (e *Env) WaitWarm() {
	e.T.Helper()
	if !e.HasVar("XDG_RUNTIME_DIR") {
		e.UseRuntimeDir(filepath.Join(e.Base, "run"))
	}
	// Also when the test chose the directory: the daemon started below
	// is this Env's.
	e.stopDaemonAtEnd()
	var out []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		cmd := exec.Command(e.Fence, "daemon", "status")
		cmd.Env = e.Vars
		out, _ = cmd.CombinedOutput()
		switch {
		case bytes.Contains(out, []byte("warm sandbox init: ready")):
			return
		case bytes.Contains(out, []byte("daemon: not running")):
			start := exec.Command(e.Fence, "daemon", "start")
			start.Env = e.Vars
			start.Run()
		}
	}
	e.T.Fatalf("no warm sandbox init after 10s; fence daemon status:\n%s", out)
}

// UseRuntimeDir makes rt (created 0700) the runtime directory
// ($XDG_RUNTIME_DIR) of every run, and stops the daemon a run starts there
// when the test ends.
func (e *Env) UseRuntimeDir(rt string) {
	e.T.Helper()
	if err := os.MkdirAll(rt, 0o700); err != nil {
		e.T.Fatal(err)
	}
	e.Vars = append(e.Vars, "XDG_RUNTIME_DIR="+rt)
	e.stopDaemonAtEnd()
}

// stopDaemonAtEnd stops the daemon of the runtime directory the runs use
// when the test ends (once per Env).
func (e *Env) stopDaemonAtEnd() {
	if e.stopsDaemon {
		return
	}
	e.stopsDaemon = true
	e.T.Cleanup(func() {
		stop := exec.Command(e.Fence, "daemon", "stop")
		stop.Env = e.Vars
		stop.Run()
	})
}

// HasVar reports whether the environment sets name.
func (e *Env) HasVar(name string) bool {
	for _, v := range e.Vars {
		if strings.HasPrefix(v, name+"=") {
			return true
		}
	}
	return false
}
