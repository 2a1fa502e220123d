package config

import (
	"os"
	"path/filepath"
	"testing"
)

// symlinkResolver resolves through symlinks as far as the path exists and
// keeps the rest as written: below a missing directory, a dangling link or
// a file, as below an existing one.
func TestSymlinkResolver(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mk := func(p string) string { return filepath.Join(root, p) }
	for _, d := range []string{"real/sub", "other"} {
		if err := os.MkdirAll(mk(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(mk("file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"link": "real", "dangling": "nowhere/deeper", "rel": "../" + filepath.Base(root) + "/other"} {
		if err := os.Symlink(target, mk(link)); err != nil {
			t.Fatal(err)
		}
	}
	sr := symlinkResolver{}
	for in, want := range map[string]string{
		"real/sub":             "real/sub",
		"link/sub":             "real/sub",
		"link/sub/missing/x":   "real/sub/missing/x",
		"missing/a/b":          "missing/a/b",
		"dangling":             "dangling",
		"dangling/child":       "dangling/child",
		"file/child":           "file/child",
		"rel/x":                "other/x",
		"link/../other/y":      "other/y",
		"real/sub/../../other": "other",
	} {
		if got := sr.resolve(filepath.Clean(mk(in))); got != mk(want) {
			t.Errorf("resolve %s = %s, want %s", in, got, mk(want))
		}
	}
	// The same answers from a resolver that has seen nothing yet.
	if got := (symlinkResolver{}).resolve(mk("link/sub/missing/x")); got != mk("real/sub/missing/x") {
		t.Errorf("fresh resolver: %s", got)
	}
}
