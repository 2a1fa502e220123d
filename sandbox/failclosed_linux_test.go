package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// ATTACKS.md K-10: when a protection layer cannot be installed, fence must
// refuse to run the command (status 125, a message naming the layer and
// the fix) unless the user config accepts the weaker mode, and then say so.
//
// The conditions are the kernel's own, set up by testdata/degrade.py before
// it execs fence: Landlock's domain stack full (E2BIG), the seccomp
// instruction budget spent (ENOMEM), user namespaces refused by a seccomp
// filter (EPERM). Every mode sets no_new_privs, which makes the fence
// client "confined" (sandbox.Confined): it never takes a warm init, which
// was booted elsewhere and would not inherit the condition, but clones its
// own init, which does. That is the path under test; a warm init taken by
// mistake would run with every layer and fail these tests (no refusal, no
// notice).

// degradeScript is the wrapper: python3 degrade.py MODE -- COMMAND...
const degradeScript = "testdata/degrade.py"

// degradeCase is one K-10 condition.
type degradeCase struct {
	name string
	mode string // degrade.py's MODE
	// control runs under the wrapper without fence (sh -c, with $DEGRADE
	// the wrapper's path) and must print every one of controlWant: the
	// condition is real, or the test proves nothing.
	control     string
	controlWant []string
	// refused is what fence's refusal must say: the layer, the kernel's
	// reason and the fix.
	refused []string
	// layer is the allowDegraded entry that accepts the weaker mode, ""
	// when there is none (fence must then not suggest one).
	layer  string
	notice string // what fence must print when it runs degraded
	// doctor is the check fence doctor must mark FAIL.
	doctor string
}

func TestFailClosed(t *testing.T) {
	sandboxtest.Require(t, runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64",
		"degrade.py knows the syscall numbers of amd64 and arm64 only")
	_, err := exec.LookPath("python3")
	sandboxtest.Require(t, err == nil, "python3 not installed (testdata/degrade.py sets the conditions up)")
	script, err := filepath.Abs(degradeScript)
	if err != nil {
		t.Fatal(err)
	}

	landlockRefused := []string{"install Landlock", "landlock_restrict_self: argument list too long",
		"already stacks the most Landlock domains", `allowDegraded = ["landlock"] in your user config`}
	seccompRefused := []string{"install the seccomp filter", "cannot allocate memory",
		"use up the kernel's budget", `allowDegraded = ["seccomp"] in your user config`}
	cases := []degradeCase{{
		// The baseline: the wrapper alone leaves every layer available,
		// and the controls below tell the difference.
		name:        "nnp-only",
		mode:        "nnp",
		control:     `python3 "$DEGRADE" probe landlock; python3 "$DEGRADE" probe seccomp 1; unshare -Ur true && echo "userns: ok"`,
		controlWant: []string{"probe landlock: ok", "probe seccomp 1: ok", "userns: ok"},
	}, {
		name:        "landlock-full",
		mode:        "landlock-full",
		control:     `python3 "$DEGRADE" probe landlock`,
		controlWant: []string{"probe landlock: E2BIG"},
		refused:     landlockRefused,
		layer:       "landlock",
		doctor:      "landlock",
		notice:      "running without Landlock (landlock_restrict_self: argument list too long), as allowDegraded says",
	}, {
		name:        "seccomp-full",
		mode:        "seccomp-full",
		control:     `python3 "$DEGRADE" probe seccomp 1`,
		controlWant: []string{"probe seccomp 1: ENOMEM"},
		refused:     seccompRefused,
		layer:       "seccomp",
		doctor:      "seccomp",
		notice:      "running without seccomp (seccomp(SECCOMP_SET_MODE_FILTER): cannot allocate memory), as allowDegraded says",
	}, {
		// Room for fence's base filter (installed as the init boots) but
		// not for its late part (the mount syscalls, at the lockdown):
		// the mode is found by seccompBaseRoom.
		name:    "seccomp-late",
		refused: seccompRefused,
		layer:   "seccomp",
		doctor:  "seccomp",
		notice:  "running without the seccomp filter's mount and MPTCP part (seccomp(SECCOMP_SET_MODE_FILTER): cannot allocate memory), as allowDegraded says",
	}, {
		name:        "no-userns",
		mode:        "no-userns",
		control:     `unshare -Ur true; echo "unshare: status $?"`,
		controlWant: []string{"Operation not permitted", "unshare: status 1"},
		refused: []string{"create the sandbox namespaces", "operation not permitted",
			"unprivileged user namespaces", "fence doctor"},
		doctor: "user namespaces",
	}}
	for _, c := range cases {
		t.Run("K-10/"+c.name, func(t *testing.T) {
			e := newDegradeEnv(t, script)
			switch c.name {
			case "landlock-full":
				sandboxtest.Require(t, kernelLandlockABI() >= 4, fmt.Sprintf("Landlock ABI %d: degrade.py's network-only ruleset needs ABI 4", kernelLandlockABI()))
			case "no-userns", "nnp-only":
				_, err := exec.LookPath("unshare")
				sandboxtest.Require(t, err == nil, "unshare (util-linux) not installed: it is the control")
			case "seccomp-late":
				room := seccompBaseRoom(t, e)
				t.Logf("fence's base seccomp filter needs room for an allow-all filter of %d instructions", room)
				c.mode = fmt.Sprintf("seccomp-room=%d", room)
				c.control = fmt.Sprintf(`python3 "$DEGRADE" probe seccomp %d; python3 "$DEGRADE" probe seccomp 1`, room+1)
				c.controlWant = []string{fmt.Sprintf("probe seccomp %d: ENOMEM", room+1), "probe seccomp 1: ok"}
			}

			r := e.wrapped(t, c.mode, "sh", "-c", c.control)
			for _, w := range c.controlWant {
				if !strings.Contains(r.Out(), w) {
					t.Fatalf("control: under degrade.py %s without fence, want %q; got status %d:\n%s", c.mode, w, r.Code, r.Out())
				}
			}

			if c.refused == nil {
				r := e.fence(t, c.mode)
				if r.Code != 0 || !e.Exists("RAN") || strings.Contains(r.Stderr, "allowDegraded") {
					t.Fatalf("fence under degrade.py %s: status %d, RAN exists %v, want 0 and true without a notice:\n%s",
						c.mode, r.Code, e.Exists("RAN"), r.Out())
				}
				return
			}

			t.Run("refused", func(t *testing.T) {
				r := e.fence(t, c.mode)
				if r.Code != 125 {
					t.Errorf("status %d, want 125", r.Code)
				}
				if e.Exists("RAN") {
					t.Errorf("the command ran")
				}
				for _, w := range c.refused {
					if !strings.Contains(r.Stderr, w) {
						t.Errorf("stderr does not say %q", w)
					}
				}
				if c.layer == "" && strings.Contains(r.Stderr, "allowDegraded") {
					t.Errorf("stderr suggests allowDegraded, which cannot accept this")
				}
				if t.Failed() {
					t.Logf("fence under degrade.py %s:\n%s", c.mode, r.Out())
				}
			})
			if c.doctor != "" {
				t.Run("doctor", func(t *testing.T) {
					r := e.wrapped(t, c.mode, e.Fence, "doctor")
					if r.Code != 125 || !strings.Contains(r.Stdout, "FAIL "+c.doctor) {
						t.Errorf("fence doctor under degrade.py %s: status %d, want 125 and FAIL %s:\n%s", c.mode, r.Code, c.doctor, r.Out())
					}
					if c.layer == "" && strings.Contains(r.Out(), "allowDegraded") {
						t.Errorf("fence doctor suggests allowDegraded, which cannot accept this:\n%s", r.Out())
					}
				})
			}
			if c.layer == "" {
				return
			}
			t.Run("allowDegraded", func(t *testing.T) {
				e.allowDegraded(t, c.layer)
				defer e.allowDegraded(t, "")
				r := e.fence(t, c.mode)
				if r.Code != 0 {
					t.Errorf("status %d, want 0", r.Code)
				}
				if !e.Exists("RAN") {
					t.Errorf("the command did not run")
				}
				if !strings.Contains(r.Stderr, "fence: "+c.notice) {
					t.Errorf("stderr does not say %q", c.notice)
				}
				if t.Failed() {
					t.Logf("fence under degrade.py %s with allowDegraded = [%q]:\n%s", c.mode, c.layer, r.Out())
				}
			})
		})
	}
}

// degradeEnv is a test home with the wrapper.
type degradeEnv struct {
	*sandboxtest.Env
	script  string
	runtime string // $XDG_RUNTIME_DIR
}

// newDegradeEnv makes a test home with a runtime directory of its own.
// The confined clients start their daemons there (of their confinement's
// kind, config.RuntimeDir), which inherit the condition; they are killed
// at the end (one in a Landlock domain refuses `fence daemon stop` from
// outside it).
func newDegradeEnv(t *testing.T, script string) *degradeEnv {
	e := sandboxtest.New(t, "[filesystem]\nallowWrite = [\".\"]\n")
	rt := filepath.Join(e.Base, "run")
	if err := os.MkdirAll(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	e.Vars = append(e.Vars, "XDG_RUNTIME_DIR="+rt, "DEGRADE="+script)
	t.Cleanup(func() { killDaemons(t, rt) })
	return &degradeEnv{Env: e, script: script, runtime: rt}
}

// allowDegraded writes the user config accepting layer ("": none).
func (e *degradeEnv) allowDegraded(t *testing.T, layer string) {
	t.Helper()
	p := e.Path("~/.config/fence/config.toml")
	if layer == "" {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(fmt.Sprintf("[sandbox]\nallowDegraded = [%q]\n", layer)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fence runs `fence -s .fence.toml -- sh -c 'touch RAN'` under the
// wrapper, RAN removed first, and with no daemon left from the last run:
// every run of the wrapper makes new Landlock domains, and a daemon in
// another domain cannot see this run's fence (TestConfinedClientDaemon).
func (e *degradeEnv) fence(t *testing.T, mode string) sandboxtest.Result {
	t.Helper()
	killDaemons(t, e.runtime)
	if err := os.Remove(e.Path("RAN")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return e.wrapped(t, mode, e.Fence, "-s", e.Config, "--", "sh", "-c", "touch RAN")
}

// wrapped runs python3 degrade.py mode -- args... in the project. A
// wrapper that could not set the condition up fails the test.
func (e *degradeEnv) wrapped(t *testing.T, mode string, args ...string) sandboxtest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", append([]string{e.script, mode, "--"}, args...)...)
	cmd.Dir = e.Project
	cmd.Env = e.Vars
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := sandboxtest.Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("degrade.py %s -- %q: timed out:\n%s", mode, args, r.Out())
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("degrade.py %s -- %q: %v", mode, args, err)
	}
	if strings.HasPrefix(r.Stderr, "degrade.py:") {
		t.Fatalf("degrade.py %s could not set the condition up (status %d):\n%s", mode, r.Code, r.Stderr)
	}
	return r
}

// seccompBaseRoom returns the least room that degrade.py's seccomp-room=N
// can leave (the largest allow-all filter that still fits) in which
// fence's base seccomp filter goes on; its late part then does not. It
// searches rather than hard-codes: the filter's size changes with fence,
// and the kernel's accounting with the kernel. With allowDegraded, fence's
// notice says which part failed.
func seccompBaseRoom(t *testing.T, e *degradeEnv) int {
	t.Helper()
	e.allowDegraded(t, "seccomp")
	defer e.allowDegraded(t, "")
	late := 0 // the room of the last run that said only the late part failed
	baseOn := func(room int) bool {
		r := e.fence(t, fmt.Sprintf("seccomp-room=%d", room))
		switch {
		case r.Code != 0 || !e.Exists("RAN"):
		case strings.Contains(r.Stderr, "running without seccomp ("):
			return false
		case strings.Contains(r.Stderr, "running without the seccomp filter's mount and MPTCP part ("):
			late = room
			return true
		case !strings.Contains(r.Stderr, "allowDegraded"):
			return true // the whole filter went on
		}
		t.Fatalf("fence under degrade.py seccomp-room=%d with allowDegraded = [\"seccomp\"]: status %d, RAN exists %v, want 0, true and a notice:\n%s",
			room, r.Code, e.Exists("RAN"), r.Out())
		return false
	}
	// Room 0 is seccomp-full; 4095 is the most a filter can leave.
	lo, hi := 1, 4095
	if !baseOn(hi) {
		t.Fatalf("fence's base seccomp filter does not go on even with room for %d instructions", hi)
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if baseOn(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if late != lo {
		// The cases that follow show what fence did.
		t.Errorf("with room for fence's base seccomp filter (an allow-all filter of %d instructions), fence said nothing of its late part: "+
			"either it ignores the late part's failure, or it no longer installs its filter in two parts (then this case must change)", lo)
	}
	return lo
}

// kernelLandlockABI returns the kernel's Landlock ABI version, 0 without Landlock.
func kernelLandlockABI() int {
	const createRulesetVersion = 1
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, createRulesetVersion)
	if e != 0 {
		return 0
	}
	return int(v)
}
