package sandbox_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// TestConfinedClientDaemon: a fence run inside an agent's sandbox (here a
// Landlock domain of its own, with no_new_privs) starts the daemon it
// needs, and that daemon inherits the domain. It must not be the daemon
// the user's own fence finds next: from inside the domain it cannot even
// read that fence's /proc entries to verify it, and it locked every other
// client out until it went idle (found by TestFailClosed's first version).
// A second domain of the same kind meets the first one's daemon: it is
// refused, and told what to do.
func TestConfinedClientDaemon(t *testing.T) {
	_, err := exec.LookPath("python3")
	sandboxtest.Require(t, err == nil, "python3 not installed (testdata/degrade.py sets the domain up)")
	sandboxtest.Require(t, kernelLandlockABI() >= 4, fmt.Sprintf("Landlock ABI %d: degrade.py's network-only ruleset needs ABI 4", kernelLandlockABI()))
	script, err := filepath.Abs(degradeScript)
	if err != nil {
		t.Fatal(err)
	}
	e := sandboxtest.New(t, writeDot)
	rt := filepath.Join(e.Base, "run")
	if err := os.MkdirAll(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	e.Vars = append(e.Vars, "XDG_RUNTIME_DIR="+rt)
	t.Cleanup(func() { killDaemons(t, rt) })
	d := &degradeEnv{Env: e, script: script, runtime: rt}

	r := d.wrapped(t, "landlock-one", e.Fence, "-s", e.Config, "--", "touch", "RAN1")
	if r.Code != 0 || !e.Exists("RAN1") {
		t.Fatalf("fence in a Landlock domain of its own: status %d, want 0:\n%s", r.Code, r.Out())
	}
	r = e.Run("--", "touch", "RAN2")
	if r.Code != 0 || !e.Exists("RAN2") {
		t.Errorf("after a confined fence started a daemon, the user's own fence failed (status %d):\n%s", r.Code, r.Out())
	}
	r = d.wrapped(t, "landlock-one", e.Fence, "-s", e.Config, "--", "touch", "RAN3")
	if e.Exists("RAN3") {
		// A later kernel or fence may let the daemon see a sibling
		// domain; then there is no refusal to explain.
		return
	}
	for _, want := range []string{"refused this process", "runs confined (nnp)", "kill "} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("a client the confined daemon cannot see is not told %q (status %d):\n%s", want, r.Code, r.Out())
		}
	}
}

// killDaemons kills the fence daemons whose runtime directory is below
// rt (one confined in a Landlock domain refuses `fence daemon stop` from
// any other), and waits until they are gone.
func killDaemons(t *testing.T, rt string) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var killed []string
	defer func() {
		for _, p := range killed {
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if b, err := os.ReadFile(p + "/cmdline"); err != nil || len(b) == 0 { // gone, or a zombie
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("daemon %s still running 5s after SIGKILL", p)
					break
				}
			}
		}
	}()
	for _, p := range procs {
		env, err := os.ReadFile(p + "/environ")
		if err != nil || !bytes.Contains(env, []byte("XDG_RUNTIME_DIR="+rt+"\x00")) {
			continue
		}
		cmdline, _ := os.ReadFile(p + "/cmdline")
		if !bytes.Contains(cmdline, []byte("daemon\x00run")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(p)); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, p)
		}
	}
}
