package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestFSCacheEvalSymlinks checks the plan's remembered resolution against
// filepath.EvalSymlinks on a tree of relative, absolute, chained, dangling
// and looping links, in one cache (so later lookups reuse earlier ones).
func TestFSCacheEvalSymlinks(t *testing.T) {
	d := t.TempDir()
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(d, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(d, name)); err != nil {
			t.Fatal(err)
		}
	}
	mk("a/b/c")
	mk("x/y")
	if err := os.WriteFile(filepath.Join(d, "a/b/f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ln("a/b", "ab")                 // relative
	ln(filepath.Join(d, "x"), "ax") // absolute
	ln("../x/y", "a/up")            // dot-dot after the link's directory
	ln("../../ab/c", "x/y/back")    // through another link
	ln("ab", "chain")
	ln("nowhere", "dangling")
	ln("loop2", "loop1")
	ln("loop1", "loop2")
	ln("b/f", "a/tofile")
	fc := newFSCache()
	// A missing parent answers for its children, as the kernel would.
	for _, p := range []string{"missing", "missing/x", "missing/x/y", "a/b/f", "a/b/f/x"} {
		full := filepath.Join(d, p)
		_, want := os.Lstat(full)
		for i := 0; i < 2; i++ {
			if _, err := fc.lstat(full); (err == nil) != (want == nil) || (err != nil && errors.Is(err, fs.ErrNotExist) != errors.Is(want, fs.ErrNotExist)) {
				t.Errorf("lstat %s (lookup %d): %v, want %v", p, i+1, err, want)
			}
		}
	}
	for _, p := range []string{
		"a/b/c", "ab", "ab/c", "ax/y", "a/up", "a/up/back", "a/up/back/..", "chain/c", "chain/f",
		"dangling", "dangling/x", "loop1", "loop2/x", "a/tofile", "a/tofile/x", "a/b/f/x", "missing",
		"missing/x", "ax/y/back", ".", "a/../ab",
	} {
		full := filepath.Join(d, p)
		want, wantErr := filepath.EvalSymlinks(full)
		for i := 0; i < 2; i++ {
			got, err := fc.evalSymlinks(full)
			if got != want || (err == nil) != (wantErr == nil) {
				t.Errorf("%s (lookup %d): got %q, %v; want %q, %v", p, i+1, got, err, want, wantErr)
			}
		}
	}
}
