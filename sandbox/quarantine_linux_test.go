package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The final sweep quarantines every watched name that exists, whether its
// directory is listed once (several watched names in it) or looked up name
// by name (too many entries to list), puts back a protected symlink that
// was removed, and leaves everything else alone.
func TestFinalSweep(t *testing.T) {
	state := t.TempDir()
	proj := t.TempDir()
	big := t.TempDir()
	for i := 0; i < maxListed+10; i++ {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(proj, "link")); err != nil {
		t.Fatal(err)
	}
	var ws []watch
	for _, dir := range []string{proj, big} {
		for _, name := range []string{".envrc", ".vscode", "lefthook.yml", ".mcp.json", "Makefile.local"} {
			ws = append(ws, watch{Dir: dir, Name: name, Protected: filepath.Join(dir, name), Reason: "test"})
		}
	}
	ws = append(ws, watch{Dir: proj, Name: "link", Protected: filepath.Join(proj, "link"), Reason: "test", Link: "/etc/hostname"})

	// What the sandbox left behind.
	for _, p := range []string{filepath.Join(proj, ".envrc"), filepath.Join(big, "lefthook.yml"), filepath.Join(proj, "keep.txt")} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(proj, ".vscode"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proj, ".vscode", "tasks.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(proj, "link")); err != nil {
		t.Fatal(err)
	}

	w := &watcher{spec: &Spec{Env: []string{"XDG_STATE_HOME=" + state}, Notices: io.Discard}, all: ws, modes: map[string]uint32{}, final: true}
	w.sweep()
	if len(w.failed) > 0 {
		t.Fatalf("could not quarantine: %v", w.failed)
	}
	for _, p := range []string{filepath.Join(proj, ".envrc"), filepath.Join(proj, ".vscode"), filepath.Join(big, "lefthook.yml")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	if _, err := os.Stat(filepath.Join(proj, "keep.txt")); err != nil {
		t.Errorf("an unwatched file went: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(proj, "link")); err != nil || l != "/etc/hostname" {
		t.Errorf("the protected symlink was not put back: %q, %v", l, err)
	}
	if n := countFiles(t, filepath.Join(state, "fence", "quarantine")); n != 3 {
		t.Errorf("%d entries quarantined, want 3 (.envrc, .vscode/tasks.json, lefthook.yml)", n)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// A per-user inotify limit reached (a sandboxed program may hold every
// instance, ATTACKS.md C-11) fails the start with the limit named and how
// to find the holders; other errors pass unchanged.
func TestInotifyLimitHint(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("inotify_init1: %w", unix.EMFILE), "fs.inotify.max_user_instances = "},
		{fmt.Errorf("inotify_add_watch: %w", unix.ENOSPC), "fs.inotify.max_user_watches = "},
	} {
		err := inotifyLimit(c.err)
		var h *hintedError
		if !errors.As(err, &h) || !strings.Contains(h.Hint(), c.want) || !strings.Contains(h.Hint(), "anon_inode:inotify") {
			t.Errorf("inotifyLimit(%v): %v, want a hint naming %q", c.err, err, c.want)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("inotifyLimit(%v) lost the error", c.err)
		}
	}
	if err := inotifyLimit(unix.EACCES); err != unix.EACCES {
		t.Errorf("inotifyLimit(EACCES) = %v, want it unchanged", err)
	}
}

// copyFile, handed a fifo (one swapped in after the walk saw a regular
// file), neither blocks nor copies it.
func TestCopyFileFifo(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, ".envrc")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- copyFile(fifo, filepath.Join(dir, "copy")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("copyFile(fifo) = %v, want nil (dropped)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("copyFile blocked on a fifo")
	}
	if _, err := os.Lstat(filepath.Join(dir, "copy")); err == nil {
		t.Error("a fifo was copied")
	}
	reg := filepath.Join(dir, "reg")
	if err := os.WriteFile(reg, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(reg, filepath.Join(dir, "reg.copy")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "reg.copy")); string(b) != "content" {
		t.Errorf("regular file copied as %q", b)
	}
}

// A protected path that could not be quarantined is reported with what
// the sandbox put in its name escaped, on stderr as in the monitor
// (ATTACKS.md T-13): the name of a new .git/modules entry is the
// sandbox's choice.
func TestQuarantineFailureEscaped(t *testing.T) {
	var notices, monitor strings.Builder
	w := &watcher{spec: &Spec{Notices: &notices, Monitor: &monitor}}
	p := "/p/.git/modules/\x1b]52;c;cHduZWQ=\a"
	w.report(watch{Reason: "git configuration"}, p, "", fmt.Errorf("rename %s: %w", p, unix.ENAMETOOLONG))
	for name, out := range map[string]string{"stderr": notices.String(), "monitor": monitor.String()} {
		if strings.ContainsAny(out, "\x1b\a") || !strings.Contains(out, "could not be quarantined") {
			t.Errorf("%s: %q, want the report with control characters escaped", name, out)
		}
	}
}
