package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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

// TestFSCacheListing: once a directory is listed, lookups in it still give
// what lstat gives, for existing and missing names, links, unclean paths,
// and a FIFO where a directory is expected (it must not block).
func TestFSCacheListing(t *testing.T) {
	d := t.TempDir()
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	for _, n := range []string{"f1", "f2", ".hidden"} {
		if err := os.WriteFile(filepath.Join(d, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(d, "sub"), 0o755)
	os.Symlink("nowhere", filepath.Join(d, "dangling"))
	if err := unix.Mkfifo(filepath.Join(d, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	fc := newFSCache()
	names := []string{"m1", "m2", "m3", "m4", "f1", "f2", ".hidden", "sub", "dangling", "fifo", "m5", "sub/.", "sub/..", "fifo/a", "fifo/b", "fifo/c", "fifo/d", "fifo/e", "sub/x", "sub/y", "sub/z", "sub/w", "sub/v"}
	for round := 0; round < 2; round++ {
		for _, n := range names {
			p := filepath.Join(d, n)
			if strings.HasSuffix(n, "/.") || strings.HasSuffix(n, "/..") {
				p = d + "/" + n // unclean on purpose
			}
			wfi, werr := os.Lstat(p)
			fi, err := fc.lstat(p)
			if (err == nil) != (werr == nil) || (err != nil && errors.Is(err, fs.ErrNotExist) != errors.Is(werr, fs.ErrNotExist)) {
				t.Errorf("lstat %s: %v, want %v", n, err, werr)
			} else if err == nil && fi.Mode() != wfi.Mode() {
				t.Errorf("lstat %s: mode %v, want %v", n, fi.Mode(), wfi.Mode())
			}
		}
	}
	if fc.names[d] == nil {
		t.Errorf("the directory was not listed after %d lookups", len(names))
	}
	if fc.names[filepath.Join(d, "fifo")] != nil {
		t.Error("a FIFO was listed as a directory")
	}
}
