package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/fence-dev/fence/shellhook"
)

// deadPID returns a pid no process has.
func deadPID(t *testing.T) int {
	for pid := 999999; pid > 1000; pid-- {
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			return pid
		}
	}
	t.Fatal("no free pid")
	return 0
}

// victim makes a directory of the user's with entries named like stale
// sessions ("<dead pid>-photos"), which cleanStaleSessions would remove.
func victim(t *testing.T, dir string) []string {
	pid := deadPID(t)
	var files []string
	for _, n := range []string{"-photos", "-taxes"} {
		d := filepath.Join(dir, strconv.Itoa(pid)+n)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(d, "keep.txt")
		os.WriteFile(f, []byte("keep"), 0o600)
		files = append(files, f)
	}
	return files
}

func checkKept(t *testing.T, files []string) {
	t.Helper()
	for _, f := range files {
		if b, err := os.ReadFile(f); err != nil || string(b) != "keep" {
			t.Errorf("the user's file %s is gone or changed (%q, %v)", f, b, err)
		}
	}
}

// TestShellFilesRefuseLinkedSessions: a sandbox that could write the home
// directory replaced sessions/ with a link to a directory of the user's;
// the next `fence shell` removed the entries there whose names parse as
// dead pids. Now it refuses to start, names the link and removes nothing.
func TestShellFilesRefuseLinkedSessions(t *testing.T) {
	tmp := t.TempDir()
	base := filepath.Join(tmp, "state", "fence-shell")
	os.MkdirAll(base, 0o700)
	kept := victim(t, filepath.Join(tmp, "victim"))
	if err := os.Symlink(filepath.Join(tmp, "victim"), filepath.Join(base, "sessions")); err != nil {
		t.Fatal(err)
	}
	sf, err := newShellFiles(base, "/src/proj", false)
	if err == nil {
		sf.remove()
		t.Error("session files made through a link at sessions/")
	}
	var pl *plantedLinkError
	if !errors.As(err, &pl) || !strings.Contains(pl.hint(), "rm "+filepath.Join(base, "sessions")) {
		t.Errorf("error %v does not say which link to remove", err)
	}
	checkKept(t, kept)
	if t.Failed() {
		return
	}

	// A link in place of one session's directory is removed, not followed.
	os.Remove(filepath.Join(base, "sessions"))
	os.Mkdir(filepath.Join(base, "sessions"), 0o700)
	stale := filepath.Join(base, "sessions", strconv.Itoa(deadPID(t))+"-0123")
	os.Symlink(filepath.Join(tmp, "victim"), stale)
	sf, err = newShellFiles(base, "/src/proj", false)
	if err != nil {
		t.Fatal(err)
	}
	sf.remove()
	if _, err := os.Lstat(stale); err == nil {
		t.Error("stale link left in sessions/")
	}
	checkKept(t, kept)
}

// TestShellFilesRefuseLinkedHistory: a link planted at a project's history
// directory made fence create and grant write access to wherever it
// pointed, and the sandbox then failed with a misleading message. Now the
// error names the link to remove.
func TestShellFilesRefuseLinkedHistory(t *testing.T) {
	tmp := t.TempDir()
	base := filepath.Join(tmp, "state", "fence-shell")
	os.MkdirAll(filepath.Join(base, "history"), 0o700)
	link := filepath.Join(base, "history", shellhook.HistoryKey("/src/proj"))
	target := filepath.Join(tmp, "elsewhere")
	os.Mkdir(target, 0o700)
	os.Symlink(target, link)
	sf, err := newShellFiles(base, "/src/proj", false)
	if err == nil {
		sf.remove()
		t.Fatal("history through a planted link accepted")
	}
	var pl *plantedLinkError
	if !errors.As(err, &pl) || !strings.Contains(pl.hint(), "rm "+link) {
		t.Errorf("error %v does not say which link to remove", err)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("wrote into the link's target: %v", ents)
	}
	ents, _ := os.ReadDir(filepath.Join(base, "sessions"))
	if len(ents) != 0 {
		t.Errorf("session files left behind: %v", ents)
	}
}

// TestNoticeRefusesLink: the client rewrites the notice file when the
// config changes; a link or hard link planted in its place made it
// overwrite the file it names (~/.ssh/authorized_keys).
func TestNoticeRefusesLink(t *testing.T) {
	tmp := t.TempDir()
	base := filepath.Join(tmp, "state", "fence-shell")
	sf, err := newShellFiles(base, "/src/proj", true)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.remove()
	if fi, err := os.Lstat(sf.handoff); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("handoff file: %v", err)
	}
	keys := filepath.Join(tmp, "authorized_keys")
	os.WriteFile(keys, []byte("keep"), 0o600)
	os.Remove(sf.notice)
	os.Symlink(keys, sf.notice)
	if err := sf.writeNotice("1 changed\n"); err == nil {
		t.Error("notice written through a symlink")
	}
	checkKept(t, []string{keys})
	os.Remove(sf.notice)
	if err := os.Link(keys, sf.notice); err == nil {
		if err := sf.writeNotice("1 changed\n"); err == nil {
			t.Error("notice written into a hard link")
		}
		checkKept(t, []string{keys})
	}
	os.Remove(sf.notice)
	os.WriteFile(sf.notice, nil, 0o600)
	if err := sf.writeNotice("2 changed\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(sf.notice); string(b) != "2 changed\n" {
		t.Errorf("notice %q", b)
	}
}
