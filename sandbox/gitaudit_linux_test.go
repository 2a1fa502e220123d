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

// anyCommit is an object name for gitlinks added with update-index: git
// does not check that the commit exists.
const anyCommit = "0123456789012345678901234567890123456789"

// gitCommitted makes a repository at rel with one commit of file name.
func gitCommitted(t *testing.T, e *sandboxtest.Env, rel, name string) {
	t.Helper()
	gitInitIn(t, e, e.Path(rel))
	e.Write(rel+"/"+name, name+"\n")
	gitIn(t, e, rel, "add", name)
	gitIn(t, e, rel, "commit", "-q", "-m", name)
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
			gitCommitted(t, e, "sub", "f")
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

// whileRunning starts script in the sandbox, which signals it is ready by
// creating the file "ready" in the project and then waits for "go"; in
// between, meanwhile runs on the host, as the user working elsewhere.
func whileRunning(t *testing.T, e *sandboxtest.Env, script string, meanwhile func()) sandboxtest.Result {
	t.Helper()
	wait := startSh(t, e, script+` && touch ready && while [ ! -e go ]; do sleep 0.05; done; echo ok`)
	for deadline := time.Now().Add(30 * time.Second); !e.Exists("ready"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.Write("go", "")
			t.Fatalf("the sandbox never got ready:\n%s", wait().Out())
		}
	}
	meanwhile()
	e.Write("go", "")
	r := wait()
	if r.Code != 0 || !strings.Contains(r.Stdout, "ok") {
		t.Fatalf("script failed: status %d:\n%s", r.Code, r.Out())
	}
	return r
}

// TestAuditGitlinkThroughSymlink: the sandbox adds a gitlink "lnk" to the
// project's index and makes lnk a symlink to ~/other, a repository
// outside the writable roots, which the user commits to during the
// session. The exit audit followed the link and moved ~/other's config,
// hooks and info to the quarantine (red team 4); it must leave it alone.
// A gitlink through a link to a new repository the sandbox could write
// (in node_modules, which the walk skips) is still neutralized: the
// host's git follows the link too.
func TestAuditGitlinkThroughSymlink(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	gitInit(t, e)
	gitCommitted(t, e, "~/other", "b")
	gitIn(t, e, "~/other", "config", "remote.origin.url", "https://example.com/mine.git")
	r := whileRunning(t, e, `git update-index --add --cacheinfo 160000,`+anyCommit+`,lnk && ln -s ../other lnk &&
mkdir -p node_modules/evil && git -C node_modules/evil init -q && git -C node_modules/evil config core.fsmonitor 'sh -c "id >&2"; false' &&
ln -s node_modules/evil lnk2 && git update-index --add --cacheinfo 160000,`+anyCommit+`,lnk2`, func() {
		e.Write("~/other/b", "user's work\n")
		gitIn(t, e, "~/other", "commit", "-q", "-am", "user's work outside the sandbox")
	})
	for _, f := range []string{"config", "hooks", "info", "HEAD"} {
		if !e.Exists("~/other/.git/" + f) {
			t.Errorf("~/other/.git/%s, outside the writable roots, is gone:\n%s", f, r.Stderr)
		}
	}
	if !strings.Contains(e.Read("~/other/.git/config"), "example.com/mine.git") {
		t.Errorf("~/other's config changed:\n%s", e.Read("~/other/.git/config"))
	}
	if e.Exists("node_modules/evil/.git/config") {
		t.Errorf("the new repository behind the gitlink lnk2 -> node_modules/evil kept its config:\n%s", r.Stderr)
	}
}

// TestAuditNameThroughSymlink: a protected name below the project
// (sub/.github) made a symlink to another project's .github, whose hooks
// the user edits during the session. The exit walk followed the link and
// moved that project's .github/hooks to the quarantine (red team 4); it
// must leave it alone (the link itself, created in the session, goes).
func TestAuditNameThroughSymlink(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	e.Write("~/other/.github/hooks/agent.json", `{"v":1}`)
	r := whileRunning(t, e, `mkdir sub && ln -s `+e.Path("~/other/.github")+` sub/.github`, func() {
		e.Write("~/other/.github/hooks/agent.json", `{"v":2}`)
	})
	if got := e.Read("~/other/.github/hooks/agent.json"); got != `{"v":2}` {
		t.Errorf("~/other/.github/hooks/agent.json, outside the writable roots: %s\n%s", got, r.Stderr)
	}
	if e.Exists("sub/.github") {
		t.Errorf("the link sub/.github made in the session was not quarantined:\n%s", r.Stderr)
	}
}

// TestPlanReadsNoFifo: files the plan reads at start that a sandbox of an
// earlier session could have written (.gitmodules, a .git pointer file's
// commondir, an .envrc's sources) are read without blocking: a fifo there
// made every later start hang in open() (noticed after the red team's
// fifo index). Each is a fifo here, in a repository; fence must start and
// end with the command's status.
func TestPlanReadsNoFifo(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	gitIn(t, e, ".", "init", "-q")
	for _, f := range []string{".gitmodules", ".git/commondir"} {
		if err := syscall.Mkfifo(e.Path(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r := startSh(t, e, "exit 3")(); r.Code != 3 {
		t.Fatalf("fence with fifos where it reads git files: status %d, want 3:\n%s", r.Code, r.Out())
	}
}

// TestAuditNestedGitlinks: the host's git status in the project recurses
// into gitlinks and theirs. A repository behind a gitlink of a new
// repository (newrepo/node_modules/evil), and an old one in a skipped tree
// whose config a later session appended to before making it a gitlink,
// both kept their fsmonitor (red team of the eleventh session: it ran at
// the project's next git status). Each run is also made without the
// sandbox: there the config stays, so the check can fail.
func TestAuditNestedGitlinks(t *testing.T) {
	const fsmonitor = `git config core.fsmonitor 'sh -c "id >&2"; false'`
	t.Run("behind-a-new-repository", func(t *testing.T) {
		script := `git init -q newrepo && mkdir -p newrepo/node_modules/evil && (cd newrepo/node_modules/evil && git init -q && ` + fsmonitor + `) &&
git -C newrepo update-index --add --cacheinfo 160000,` + anyCommit + `,node_modules/evil && git update-index --add --cacheinfo 160000,` + anyCommit + `,newrepo`
		c := sandboxtest.New(t, writeDot)
		gitInit(t, c)
		if r := c.Direct(script); r.Code != 0 || !c.Exists("newrepo/node_modules/evil/.git/config") {
			t.Fatalf("control: %s", r.Out())
		}
		e := sandboxtest.New(t, writeDot)
		gitInit(t, e)
		if r := e.Sh(script); r.Code != 0 || e.Exists("newrepo/node_modules/evil/.git/config") {
			t.Errorf("the repository behind newrepo's gitlink kept its config (status %d):\n%s", r.Code, r.Out())
		}
	})
	t.Run("old-one-changed-then-linked", func(t *testing.T) {
		e := sandboxtest.New(t, writeDot)
		gitInit(t, e)
		if r := e.Sh(`mkdir -p node_modules/evil2 && git -C node_modules/evil2 init -q`); r.Code != 0 {
			t.Fatalf("first session: %s", r.Out())
		}
		if !e.Exists("node_modules/evil2/.git/config") {
			t.Fatal("the first session's plain repository is gone: the test proves nothing")
		}
		// Appended in place: the .git directory's times do not change.
		r := e.Sh(`printf '[core]\n\tfsmonitor = "sh -c id"\n' >> node_modules/evil2/.git/config && git update-index --add --cacheinfo 160000,` + anyCommit + `,node_modules/evil2`)
		if r.Code != 0 {
			t.Fatalf("second session: %s", r.Out())
		}
		if strings.Contains(e.Read("node_modules/evil2/.git/config"), "fsmonitor") {
			t.Errorf("the repository made a gitlink with an fsmonitor appended kept it:\n%s", r.Out())
		}
	})
}
