package sandbox

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// roots (depth 4, 50 ms, dependency trees skipped) for the ones the user
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
// walk's bounds (depth 6, 50 ms, dependency trees skipped).
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
			if d.IsDir() && p != root && (skip[d.Name()] || depth >= 6) {
				return filepath.SkipDir
			}
			return nil
		})
	}
}

// gitlinks returns the paths of the gitlink (submodule) entries in the
// index of the repository at dir, relative to dir.
func gitlinks(dir string) []string {
	gitdir := filepath.Join(dir, ".git")
	fi, err := os.Lstat(gitdir)
	if err != nil {
		return nil
	}
	if fi.Mode().IsRegular() {
		b, err := os.ReadFile(gitdir)
		if err != nil {
			return nil
		}
		g, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
		if !ok {
			return nil
		}
		gitdir = strings.TrimSpace(g)
		if !filepath.IsAbs(gitdir) {
			gitdir = filepath.Join(dir, gitdir)
		}
	}
	b, err := os.ReadFile(filepath.Join(gitdir, "index"))
	if err != nil {
		return nil
	}
	hashLen := 20
	if cfg, err := os.ReadFile(filepath.Join(gitdir, "config")); err == nil && bytes.Contains(bytes.ToLower(cfg), []byte("sha256")) {
		hashLen = 32
	}
	return parseGitlinks(b, hashLen)
}

// parseGitlinks reads the entries of a git index (versions 2 to 4) and
// returns the paths of those with mode 160000.
func parseGitlinks(b []byte, hashLen int) []string {
	if len(b) < 12 || string(b[:4]) != "DIRC" {
		return nil
	}
	version := binary.BigEndian.Uint32(b[4:8])
	n := int(binary.BigEndian.Uint32(b[8:12]))
	if version < 2 || version > 4 {
		return nil
	}
	var out []string
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
		if version >= 3 && flags&0x4000 != 0 {
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
		if mode == 0o160000 {
			out = append(out, filepath.FromSlash(name))
		}
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
