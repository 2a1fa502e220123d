package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
