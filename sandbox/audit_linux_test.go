package sandbox

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSearchesSkipSandboxOwn: with allowWrite = ["/"], the repository
// searches (at the start and in the exit audit) leave out the host's /tmp,
// /dev, /proc and /sys, which the session cannot change: before, the
// audit could move to the quarantine a .fence.toml that another program
// made in the host's /tmp during the session. A writable root inside /tmp
// is still searched.
func TestSearchesSkipSandboxOwn(t *testing.T) {
	under := func(p string) string {
		for d := range sandboxOwn {
			if p == d || strings.HasPrefix(p, d+"/") {
				return d
			}
		}
		return ""
	}
	walkAudit([]string{"/"}, func(dotgit string) {
		if d := under(dotgit); d != "" {
			t.Errorf("audit found a repository in %s: %s", d, dotgit)
		}
	}, func(dir, base string) {
		if d := under(dir); d != "" {
			t.Fatalf("audit looked into %s: %s/%s", d, dir, base)
		}
	})
	repos, _ := reposBelow([]string{"/"})
	for _, r := range repos {
		if d := under(r); d != "" {
			t.Errorf("search at start found a repository in %s: %s", d, r)
		}
	}

	// A writable root of its own inside /tmp is searched.
	root, err := os.MkdirTemp("/tmp", "fence-audit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	repo := filepath.Join(root, "a", "repo")
	if err := os.MkdirAll(filepath.Join(repo, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	repos, _ = reposBelow([]string{root})
	if len(repos) != 1 || repos[0] != repo {
		t.Errorf("search below %s: %v, want [%s]", root, repos, repo)
	}
	var found []string
	walkAudit([]string{root}, func(dotgit string) { found = append(found, dotgit) }, nil)
	if len(found) != 1 || found[0] != filepath.Join(repo, ".git") {
		t.Errorf("audit below %s: %v", root, found)
	}
}

// TestUnreadableIndex: an index the sandbox broke is an error, at once:
// not a hang on a fifo, not a terabyte read into memory, not a link
// followed (red team 4). A missing index is no error.
func TestUnreadableIndex(t *testing.T) {
	for _, c := range []struct {
		name    string
		make    func(index string) error
		wantErr bool
	}{
		{"missing", func(string) error { return nil }, false},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }, true},
		{"sparse", func(p string) error {
			if err := os.WriteFile(p, []byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x01"), 0o644); err != nil {
				return err
			}
			return os.Truncate(p, 1<<40)
		}, true},
		{"symlink", func(p string) error { return os.Symlink("/dev/zero", p) }, true},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, true},
		{"truncated", func(p string) error {
			return os.WriteFile(p, []byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00"), 0o644)
		}, true},
	} {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := c.make(filepath.Join(dir, ".git", "index")); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := gitlinks(dir)
			done <- err
		}()
		select {
		case err := <-done:
			if (err != nil) != c.wantErr {
				t.Errorf("%s index: error %v, want one: %v", c.name, err, c.wantErr)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s index: reading it hangs", c.name)
		}
	}
}

// FuzzParseIndex: no index makes the parser panic, and what it returns
// came from the input.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x00"), 20)
	f.Add([]byte("DIRC\x00\x00\x00\x04\x00\x00\x00\x02"+strings.Repeat("\x00", 62)+"\x00a\x00"+strings.Repeat("\x00", 62)+"\x81b\x00"), 20)
	f.Fuzz(func(t *testing.T, b []byte, hashLen int) {
		if hashLen != 32 {
			hashLen = 20
		}
		entries, _, err := parseIndex(bufio.NewReader(bytes.NewReader(b)), int64(len(b)), hashLen)
		if err != nil && entries != nil {
			t.Errorf("entries with an error: %v", entries)
		}
		for _, e := range entries {
			if len(e.Path) > len(b) && !strings.HasPrefix(string(b[:8]), "DIRC\x00\x00\x00\x04") {
				t.Errorf("a name longer than the index: %q", e.Path)
			}
		}
	})
}

// TestCleanGitlink: the exit audit acts on a gitlink's path only when git
// would check it out: a hand-written index can hold anything.
func TestCleanGitlink(t *testing.T) {
	for sub, want := range map[string]bool{
		"sub": true, "deep/dir/sub": true, "..x": true,
		"": false, "/home/u/other": false, "../other": false, "a/../../other": false,
		"a//b": false, "a/": false, "./a": false, "a/.": false,
	} {
		if got := cleanGitlink(sub); got != want {
			t.Errorf("cleanGitlink(%q) = %v, want %v", sub, got, want)
		}
	}
}
