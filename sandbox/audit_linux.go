package sandbox

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A new git repository created in the session can carry hooks or a
// core.fsmonitor that would run on the host the next time the user, or
// their prompt, runs git there; added to the project's index as a gitlink,
// the host's `git status` in the project runs it (ATTACKS.md F-10, red
// team B1). No name list can protect an arbitrary path in advance, so at
// the end of the session fence finds the new repositories and moves what
// of their metadata runs code (config, hooks, and the pointers to other
// metadata) to the quarantine; a new .git file (a pointer to a git
// directory elsewhere) is quarantined whole. git still works in such a
// repository, with default settings.
//
// New repositories are found two ways: a bounded walk of the writable
// roots (depth 6, 50 ms, dependency trees skipped) for the ones the user
// may cd into, and, wherever they are, the gitlinks in the index of every
// repository the session protected, which are the ones the host's git
// recurses into.

// neutralized are the entries of a new .git directory that make git run
// code or read metadata from elsewhere.
var neutralized = []string{"config", "config.worktree", "hooks", "commondir", "info", "modules", "worktrees"}

// auditNewRepos quarantines the metadata of repositories created in the
// session and returns the paths it could not move.
func (p *Process) auditNewRepos() []string {
	w := p.watcher
	if w == nil {
		w = &watcher{spec: p.spec, modes: map[string]uint32{}}
	}
	w.mu.Lock()
	w.final = true
	w.failed = nil
	w.mu.Unlock()
	done := map[string]bool{}
	// A gitlink's repository is what the host's git status in the project
	// recurses into: new or renamed into place, it is neutralized.
	for _, d := range p.starts {
		for _, sub := range gitlinks(d) {
			dotgit := filepath.Join(d, sub, ".git")
			if born, changed := changedSince(dotgit, p.started, p.knownGit); !done[dotgit] && (born || changed) {
				done[dotgit] = true
				p.neutralize(w, dotgit)
			}
		}
	}
	// Elsewhere a repository created in the session is neutralized; one
	// that only changed may be the user's own, used from outside during
	// the session (the search at start has bounds): it is reported.
	check := func(dotgit string) {
		if done[dotgit] {
			return
		}
		born, changed := changedSince(dotgit, p.started, p.knownGit)
		switch {
		case born:
			p.neutralize(w, dotgit)
		case changed:
			reportNewRepo(p.spec, filepath.Dir(dotgit))
		}
		done[dotgit] = true
	}
	names := map[string][]ProtectedName{}
	for _, n := range ProtectedNames(p.spec.Policy) {
		first, _, _ := strings.Cut(n.Name, "/")
		if first != ".git" && !strings.Contains(n.Name, "*") {
			names[first] = append(names[first], n)
		}
	}
	live := map[string]bool{}
	for _, d := range p.starts {
		live[d] = true
	}
	walkAudit(p.writable, check, func(dir, first string) {
		if live[dir] {
			// Protected there during the session (read-only or watched):
			// a change can only have come from outside, from the user.
			return
		}
		for _, n := range names[first] {
			q := filepath.Join(dir, filepath.FromSlash(n.Name))
			if _, err := os.Lstat(q); err != nil || !treeChangedSince(q, p.started) {
				continue
			}
			w.mu.Lock()
			w.move(watch{Dir: filepath.Dir(q), Name: filepath.Base(q), Protected: q, Reason: n.Reason}, q)
			w.mu.Unlock()
		}
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// neutralize quarantines what of a new .git runs code, and tells the user.
func (p *Process) neutralize(w *watcher, dotgit string) {
	dir := filepath.Dir(dotgit)
	x := watch{Dir: dir, Name: ".git", Protected: dotgit, Reason: "new git repository"}
	fi, err := os.Lstat(dotgit)
	if err != nil {
		return
	}
	w.mu.Lock()
	if fi.IsDir() {
		for _, n := range neutralized {
			q := filepath.Join(dotgit, n)
			if _, err := os.Lstat(q); err == nil {
				x.Dir, x.Name, x.Protected = dotgit, n, q
				w.move(x, q)
			}
		}
	} else {
		w.move(x, dotgit)
	}
	w.mu.Unlock()
	msg := fmt.Sprintf("a new git repository appeared in %s during the session; its config and hooks (which run code when git is used there, also from the project's git status) were quarantined: git works there with default settings", sanitizeLine(dir))
	if p.spec.Notices != nil {
		fmt.Fprintf(p.spec.Notices, "fence: %s\n", msg)
	}
	if p.spec.Monitor != nil {
		fmt.Fprintf(p.spec.Monitor, "[fence:fs] new repository %s\n", sanitizeLine(dir))
	}
}

// changedSince reports whether p is not one of the known repositories'
// .git of the session's start and was created (born: birth time), or
// created, renamed or changed (changed: ctime; a rename sets it, so an old
// directory moved into place counts) at or after since. The sandbox can set neither
// time. Known repositories are left alone: git changes their .git's
// ctime on every commit.
func changedSince(p string, since time.Time, known map[[2]uint64]bool) (born, changed bool) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME|unix.STATX_CTIME|unix.STATX_INO, &stx); err != nil {
		return false, false
	}
	if known[[2]uint64{unix.Mkdev(stx.Dev_major, stx.Dev_minor), stx.Ino}] {
		return false, false
	}
	if stx.Mask&unix.STATX_BTIME != 0 && !time.Unix(stx.Btime.Sec, int64(stx.Btime.Nsec)).Before(since) {
		return true, true
	}
	return false, !time.Unix(stx.Ctime.Sec, int64(stx.Ctime.Nsec)).Before(since)
}

// treeChangedSince reports whether p, or for a directory anything in it
// (bounded), was created, changed or renamed at or after since.
func treeChangedSince(p string, since time.Time) bool {
	n := 0
	changed := false
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if n++; err != nil || n > 1000 || changed {
			return filepath.SkipAll
		}
		_, changed = changedSince(q, since, nil)
		return nil
	})
	return changed || n > 1000
}

// walkAudit calls found for every .git below the roots (not the roots'
// own), and name for every other entry, with its directory, within the
// walk's bounds (depth 6, 50 ms, dependency trees and [sandboxOwn]
// skipped).
func walkAudit(roots []string, found func(dotgit string), name func(dir, base string)) {
	deadline := time.Now().Add(50 * time.Millisecond)
	skip := map[string]bool{"node_modules": true, "vendor": true, ".cache": true, "target": true, ".venv": true, "venv": true}
	for _, root := range roots {
		fi, err := os.Stat(root)
		if err != nil || !fi.IsDir() {
			continue
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || time.Now().After(deadline) {
				return filepath.SkipDir
			}
			rel, _ := filepath.Rel(root, p)
			depth := strings.Count(rel, string(filepath.Separator))
			if d.Name() == ".git" && p != filepath.Join(root, ".git") {
				found(p)
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if p != root && name != nil {
				name(filepath.Dir(p), d.Name())
			}
			if d.IsDir() && p != root && (skip[d.Name()] || depth >= 6 || sandboxOwn[p]) {
				return filepath.SkipDir
			}
			return nil
		})
	}
}

// auditGitState tells the user what the session left in the repositories
// it protected that would mislead a review or run code at the user's next
// git command (red team B22): files newly hidden from git status
// (assume-unchanged, skip-worktree), and a rebase, cherry-pick or revert
// left in progress (its todo list can hold exec lines, which the user's
// "git rebase --continue" would run outside).
func (p *Process) auditGitState() {
	if p.spec.Notices == nil {
		return
	}
	for d, before := range p.hidden {
		var hidden []string
		for f := range hiddenEntries(d) {
			if !before[f] {
				hidden = append(hidden, f)
			}
		}
		if len(hidden) > 0 {
			sort.Strings(hidden)
			if len(hidden) > 5 {
				hidden = append(hidden[:5], "...")
			}
			fmt.Fprintf(p.spec.Notices, "fence: in %s the session marked files so that git status and git diff do not show their changes: %s; undo with: git update-index --no-assume-unchanged --no-skip-worktree FILE\n",
				sanitizeLine(d), sanitizeLine(strings.Join(hidden, ", ")))
		}
		g := gitDir(d)
		for _, st := range []string{"rebase-merge", "rebase-apply", "sequencer"} {
			q := filepath.Join(g, st)
			if born, _ := changedSince(q, p.started, nil); born {
				fmt.Fprintf(p.spec.Notices, "fence: in %s the session left a rebase, cherry-pick or revert in progress (%s): read its todo list (exec lines run commands) before continuing it, or abort it\n",
					sanitizeLine(d), sanitizeLine(q))
			}
		}
	}
}

// gitDir returns the git directory of the repository at dir (following a
// .git file), or "".
func gitDir(dir string) string {
	gitdir := filepath.Join(dir, ".git")
	fi, err := os.Lstat(gitdir)
	if err != nil {
		return ""
	}
	if fi.Mode().IsRegular() {
		b, err := os.ReadFile(gitdir)
		if err != nil {
			return ""
		}
		g, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
		if !ok {
			return ""
		}
		gitdir = strings.TrimSpace(g)
		if !filepath.IsAbs(gitdir) {
			gitdir = filepath.Join(dir, gitdir)
		}
	}
	return gitdir
}

// indexEntry is what the audit needs of a git index entry.
type indexEntry struct {
	Path string
	Mode uint32
	// Hidden: assume-unchanged or skip-worktree, so that git status and
	// git diff do not show changes to the file.
	Hidden bool
}

// gitIndex reads the index of the repository at dir.
func gitIndex(dir string) []indexEntry {
	gitdir := gitDir(dir)
	if gitdir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(gitdir, "index"))
	if err != nil {
		return nil
	}
	hashLen := 20
	if cfg, err := os.ReadFile(filepath.Join(gitdir, "config")); err == nil && bytes.Contains(bytes.ToLower(cfg), []byte("sha256")) {
		hashLen = 32
	}
	return parseIndex(b, hashLen)
}

// gitlinks returns the paths of the gitlink (submodule) entries in the
// index of the repository at dir, relative to dir.
func gitlinks(dir string) []string {
	var out []string
	for _, e := range gitIndex(dir) {
		if e.Mode == 0o160000 {
			out = append(out, filepath.FromSlash(e.Path))
		}
	}
	return out
}

// hiddenEntries returns the paths git status does not look at in the
// repository at dir (red team B22).
func hiddenEntries(dir string) map[string]bool {
	out := map[string]bool{}
	for _, e := range gitIndex(dir) {
		if e.Hidden {
			out[e.Path] = true
		}
	}
	return out
}

// parseIndex reads the entries of a git index (versions 2 to 4).
func parseIndex(b []byte, hashLen int) []indexEntry {
	if len(b) < 12 || string(b[:4]) != "DIRC" {
		return nil
	}
	version := binary.BigEndian.Uint32(b[4:8])
	n := int(binary.BigEndian.Uint32(b[8:12]))
	if version < 2 || version > 4 {
		return nil
	}
	var out []indexEntry
	off := 12
	prev := ""
	for i := 0; i < n; i++ {
		start := off
		fixed := 40 + hashLen + 2
		if off+fixed > len(b) {
			return out
		}
		mode := binary.BigEndian.Uint32(b[off+24 : off+28])
		flags := binary.BigEndian.Uint16(b[off+40+hashLen : off+fixed])
		off += fixed
		hidden := flags&0x8000 != 0 // assume-valid
		if version >= 3 && flags&0x4000 != 0 {
			if off+2 > len(b) {
				return out
			}
			hidden = hidden || binary.BigEndian.Uint16(b[off:off+2])&0x4000 != 0 // skip-worktree
			off += 2
		}
		var name string
		if version == 4 {
			strip, k := 0, 0
			// offset-encoded varint
			if off >= len(b) {
				return out
			}
			c := b[off]
			k++
			strip = int(c & 0x7f)
			for c&0x80 != 0 {
				if off+k >= len(b) {
					return out
				}
				c = b[off+k]
				k++
				strip = ((strip + 1) << 7) | int(c&0x7f)
			}
			off += k
			end := bytes.IndexByte(b[off:], 0)
			if end < 0 || strip > len(prev) {
				return out
			}
			name = prev[:len(prev)-strip] + string(b[off:off+end])
			off += end + 1
		} else {
			end := bytes.IndexByte(b[off:], 0)
			if end < 0 {
				return out
			}
			name = string(b[off : off+end])
			off += end + 1
			// pad to a multiple of 8 from the entry's start
			for (off-start)%8 != 0 {
				off++
			}
		}
		prev = name
		out = append(out, indexEntry{Path: name, Mode: mode, Hidden: hidden})
	}
	return out
}

// reportNewRepo tells the user about a repository that changed in the
// session but may be theirs: it is left as it is.
func reportNewRepo(spec *Spec, dir string) {
	msg := fmt.Sprintf("the git repository in %s was created or changed during the session and was not protected in it; its hooks and config (core.fsmonitor, core.hooksPath) run when git is used there: inspect %s/.git before running git in it", sanitizeLine(dir), sanitizeLine(dir))
	if spec.Notices != nil {
		fmt.Fprintf(spec.Notices, "fence: %s\n", msg)
	}
	if spec.Monitor != nil {
		fmt.Fprintf(spec.Monitor, "[fence:fs] changed repository %s\n", sanitizeLine(dir))
	}
}
