package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBuildPlan checks the mount plan for a project with a repository,
// without running anything: protected paths under the writable root are
// read-only, the directories leading to them pinned, missing ones watched,
// hard-linked ones refused.
func TestBuildPlan(t *testing.T) {
	base := t.TempDir()
	home := filepath.Join(base, "home")
	proj := filepath.Join(home, "proj")
	for _, d := range []string{filepath.Join(proj, ".git", "hooks"), filepath.Join(proj, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(proj, ".git", "config"), "[core]\n\thooksPath = tools/hooks\n")
	write(filepath.Join(proj, ".fence.toml"), "")
	write(filepath.Join(home, ".bashrc"), "")
	spec := &Spec{
		Dir: filepath.Join(proj, "sub"),
		Env: []string{"HOME=" + home},
		Policy: Policy{
			Root:        proj,
			AllowWrite:  []string{proj},
			DenyRead:    []string{filepath.Join(home, ".aws-missing")},
			ConfigFiles: []string{filepath.Join(proj, ".fence.toml")},
		},
	}
	pl, err := buildPlan(spec, "")
	if err != nil {
		t.Fatal(err)
	}
	m := pl.cfg.Mounts
	if !slices.Equal(m.Writable, []string{proj}) {
		t.Errorf("writable %q", m.Writable)
	}
	for _, p := range []string{".git/config", ".git/hooks", ".fence.toml"} {
		if !slices.Contains(m.ReadOnly, filepath.Join(proj, p)) {
			t.Errorf("%s not read-only: %q", p, m.ReadOnly)
		}
	}
	if slices.Contains(m.ReadOnly, filepath.Join(home, ".bashrc")) {
		t.Errorf("~/.bashrc is outside the writable root and needs no mount: %q", m.ReadOnly)
	}
	if !slices.Contains(m.Pins, filepath.Join(proj, ".git")) {
		t.Errorf(".git not pinned: %q", m.Pins)
	}
	watched := map[string]bool{}
	for _, w := range pl.watches {
		watched[filepath.Join(w.Dir, w.Name)] = true
	}
	for _, p := range []string{".envrc", ".vscode", ".git/commondir", ".git/info", "tools", "sub/.envrc"} {
		if !watched[filepath.Join(proj, p)] {
			t.Errorf("%s not watched: %v", p, watched)
		}
	}
	// Depth order: a parent is always mounted before its children.
	for _, list := range [][]string{m.Pins, m.ReadOnly, m.Writable} {
		for i := 1; i < len(list); i++ {
			if strings.Count(list[i], "/") < strings.Count(list[i-1], "/") {
				t.Errorf("not parents first: %q", list)
			}
		}
	}

	// A second hard link to a protected file: refuse, with a hint.
	if err := os.Link(filepath.Join(proj, ".fence.toml"), filepath.Join(proj, "alias")); err != nil {
		t.Fatal(err)
	}
	_, err = buildPlan(spec, "")
	if err == nil || !strings.Contains(err.Error(), "2 hard links") || HintOf(err) == "" {
		t.Errorf("hard-linked protected file: err %v, hint %q", err, HintOf(err))
	}
}

// The private /tmp would hide a working directory below the host's /tmp:
// it is bound read-only, or writable where allowWrite covers it, also from
// / (the private /tmp goes on top of a writable /).
func TestBuildPlanBelowTmp(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "fence-plan-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		allow    []string
		expose   bool
		writable bool
	}{
		{allow: nil, expose: true},
		{allow: []string{"/"}, writable: true},
		{allow: []string{dir}, writable: true},
	} {
		spec := &Spec{Dir: dir, Env: []string{"HOME=/nonexistent"}, Policy: Policy{Root: dir, AllowWrite: tc.allow}}
		pl, err := buildPlan(spec, "")
		if err != nil {
			t.Fatal(err)
		}
		m := pl.cfg.Mounts
		if got := slices.Contains(m.Expose, dir); got != tc.expose {
			t.Errorf("allowWrite %q: exposed %v, want %v (%q)", tc.allow, got, tc.expose, m.Expose)
		}
		if got := slices.Contains(m.Writable, dir); got != tc.writable {
			t.Errorf("allowWrite %q: bound writable %v, want %v (%q)", tc.allow, got, tc.writable, m.Writable)
		}
	}
}

// TestGitlinks reads the gitlinks of real indexes in every version git
// writes, with enough entries around them to exercise padding and v4's
// prefix compression.
func TestGitlinks(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	for _, v := range []string{"2", "3", "4", "split"} {
		dir := t.TempDir()
		run := func(args ...string) {
			t.Helper()
			cmd := exec.Command("git", args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		run("init", "-q")
		if v != "split" {
			run("config", "index.version", v)
		}
		for _, f := range []string{"a", "deep/dir/file-with-a-longer-name", "deep/dir/x"} {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
			os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644)
			run("add", f)
		}
		const h = "0123456789012345678901234567890123456789"
		run("update-index", "--add", "--cacheinfo", "160000,"+h+",deep/dir/sub")
		run("update-index", "--add", "--cacheinfo", "160000,"+h+",z")
		if v == "3" {
			os.WriteFile(filepath.Join(dir, "n"), nil, 0o644)
			run("add", "-N", "n") // intent-to-add sets the extended flag
		}
		want := "deep/dir/sub,z"
		if v == "split" {
			// The entries so far go to the shared index; the main one
			// keeps what comes after (red team of the eleventh session:
			// a gitlink in the shared index alone was missed).
			run("update-index", "--split-index")
			run("update-index", "--add", "--cacheinfo", "160000,"+h+",y")
			want = "deep/dir/sub,y,z"
		}
		got, err := gitlinks(dir)
		slices.Sort(got)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("index version %s: gitlinks = %q (%v), want %s", v, got, err, want)
		}
	}
}

// TestGitIncludes: include and includeIf paths, relative to the including
// file, "~/", nested includes, and malformed sections.
func TestGitIncludes(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	cfg := filepath.Join(dir, "repo", ".git", "config")
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	os.WriteFile(cfg, []byte("[]\n[core]\n\tpath = not-an-include\n[include]\n\tpath = ../local.gitconfig\n[includeIf \"gitdir:~/x/\"]\n\tpath = \"~/inc\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "repo", "local.gitconfig"), []byte("[include]\npath = nested\n"), 0o644)
	got := gitIncludes(cfg, home)
	want := []string{filepath.Join(dir, "repo", "local.gitconfig"), filepath.Join(home, "inc"), filepath.Join(dir, "repo", "nested")}
	if !slices.Equal(got, want) {
		t.Errorf("gitIncludes = %q, want %q", got, want)
	}
}

// TestSanitizeLine: what fence prints of a name the sandbox chose cannot
// act on the terminal or reorder the line (T-13; red team of the eleventh
// session: a bidi override in a quarantined path was printed raw).
func TestSanitizeLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain/.envrc":        "plain/.envrc",
		"esc\x1b]52;x\a":      `esc\x1b]52;x\x07`,
		"c1\u009d":            `c1\x9d`,
		"r\u202Ecri.ssap":     `r\u202ecri.ssap`,
		"zero\u200bwidth":     `zero\u200bwidth`,
		"caf\u00e9 \u2713 ok": "caf\u00e9 \u2713 ok",
	} {
		if got := sanitizeLine(in); got != want {
			t.Errorf("sanitizeLine(%q) = %q, want %q", in, got, want)
		}
	}
}
