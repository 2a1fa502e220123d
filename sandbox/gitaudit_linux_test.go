package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// startSh starts `fence -- sh -c script` in e's project and returns a
// function that waits for it, at most a minute: a fence that hangs fails
// the test instead of holding it for the package's timeout.
func startSh(t *testing.T, e *sandboxtest.Env, script string) func() sandboxtest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, e.Fence, "-s", e.Config, "--", "sh", "-c", script)
	cmd.Dir, cmd.Env = e.Project, e.Vars
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	return func() sandboxtest.Result {
		t.Helper()
		defer cancel()
		err := cmd.Wait()
		r := sandboxtest.Result{Stdout: out.String(), Stderr: errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.Code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				r.Code = 128 + int(ws.Signal())
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("fence did not end within a minute (killed); output:\n%s", r.Out())
		}
		return r
	}
}

// gitIn runs git in the project's directory rel on the host.
func gitIn(t *testing.T, e *sandboxtest.Env, rel string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", e.Path(rel)}, args...)...)
	cmd.Env = e.Vars
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v in %s: %v\n%s", args, rel, err, out)
	}
}

// TestAuditUnreadableIndex: the sandbox can write the index of a
// repository found at start (git needs to), and break it. A sparse
// terabyte made fence die of "out of memory" at the end, a fifo made it
// hang in open() for good (red team 4): either way the exit audit never
// quarantined a new repository's core.fsmonitor, and the next session in
// the project crashed or hung at start. Now each session ends with the
// command's status, the new repository is neutralized, the broken index
// is reported, and the next session starts.
func TestAuditUnreadableIndex(t *testing.T) {
	for _, c := range []struct{ name, breakIt string }{
		{"sparse", "truncate -s 1T sub/.git/index"},
		{"fifo", "rm sub/.git/index && mkfifo sub/.git/index"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := sandboxtest.New(t, writeDot)
			gitInit(t, e)
			gitInitIn(t, e, e.Path("sub"))
			e.Write("sub/f", "f\n")
			gitIn(t, e, "sub", "add", "f")
			gitIn(t, e, "sub", "commit", "-q", "-m", "f")
			r := startSh(t, e, c.breakIt+` && mkdir -p tools/x && git -C tools/x init -q && git -C tools/x config core.fsmonitor 'sh -c "id >&2"; false' && echo ok; exit 3`)()
			if r.Code != 3 || !strings.Contains(r.Stdout, "ok") {
				t.Errorf("status %d, want the command's 3:\n%s", r.Code, r.Out())
			}
			if e.Exists("tools/x/.git/config") || !e.Exists("tools/x/.git/HEAD") {
				t.Errorf("the new repository's config was not quarantined:\n%s", r.Stderr)
			}
			if !strings.Contains(r.Stderr, "the git index of the repository in "+e.Path("sub")+" could not be read") {
				t.Errorf("the broken index was not reported:\n%s", r.Stderr)
			}
			// The index is still broken when the next session starts.
			if r := startSh(t, e, "echo started")(); r.Code != 0 || r.Stdout != "started\n" {
				t.Errorf("the next session: status %d:\n%s", r.Code, r.Out())
			}
		})
	}
}
