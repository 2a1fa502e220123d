package sandbox

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	live := map[string]bool{}
	for _, d := range p.starts {
		live[d] = true
	}
	// A gitlink's repository is what the host's git status in the project
	// recurses into, and git status there recurses into its gitlinks in
	// turn: new or renamed into place, or with its config, hooks or info
	// changed (it was not protected), each is neutralized. A repository
	// behind a gitlink of a new one was missed, and so was an old one in a
	// skipped tree (node_modules) whose config the session appended to
	// (red team of the eleventh session: both ran an fsmonitor at the
	// project's next git status).
	var unknown []string
	queue := append([]string{}, p.starts...)
	seen := map[string]bool{}
	for len(queue) > 0 && len(seen) < maxAuditedRepos {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		links, err := gitlinks(d)
		if err != nil {
			// The sandbox can break an index (a fifo, a sparse
			// terabyte): its gitlinks are unknown, so every repository
			// below that changed is treated as one (below), and the
			// rest of the audit goes on.
			unknown = append(unknown, d)
			reportUnreadableIndex(p.spec, d, err)
		}
		for _, sub := range links {
			repo, ok := p.gitlinkRepo(d, sub)
			if !ok {
				continue
			}
			dotgit := filepath.Join(repo, ".git")
			if !done[dotgit] && !live[repo] {
				born, changed := changedSince(dotgit, p.started, p.knownGit)
				if born || changed || metadataChangedSince(dotgit, p.started) {
					done[dotgit] = true
					p.neutralize(w, dotgit)
				}
			}
			queue = append(queue, repo)
		}
	}
	// Elsewhere a repository created in the session is neutralized; one
	// that only changed may be the user's own, used from outside during
	// the session (the search at start has bounds): it is reported,
	// unless it may be a gitlink of an index that could not be read.
	check := func(dotgit string) {
		if done[dotgit] {
			return
		}
		born, changed := changedSince(dotgit, p.started, p.knownGit)
		switch {
		case born, changed && withinAny(dotgit, unknown):
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
	walkAudit(p.writable, check, func(dir, first string) {
		if live[dir] {
			// Protected there during the session (read-only or watched):
			// a change can only have come from outside, from the user.
			return
		}
		for _, n := range names[first] {
			q := nameOrLink(dir, n.Name)
			if _, err := os.Lstat(q); err != nil || !p.belowWritable(q) || !treeChangedSince(q, p.started) {
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

// maxAuditedRepos bounds the repositories whose gitlinks the exit audit
// follows (git status recurses as deep as they go).
const maxAuditedRepos = 512

// metadataChangedSince reports whether the entries of the .git directory
// dotgit that make git run code (config, hooks, info, ...) changed since
// t: appending to a config changes neither the .git directory's times nor
// its entries.
func metadataChangedSince(dotgit string, t time.Time) bool {
	fi, err := os.Lstat(dotgit)
	if err != nil || !fi.IsDir() {
		return false
	}
	for _, n := range neutralized {
		q := filepath.Join(dotgit, n)
		if _, err := os.Lstat(q); err == nil && treeChangedSince(q, t) {
			return true
		}
	}
	return false
}

// neutralize quarantines what of a new .git runs code, and tells the user.
func (p *Process) neutralize(w *watcher, dotgit string) {
	dir := filepath.Dir(dotgit)
	x := watch{Dir: dir, Name: ".git", Protected: dotgit, Reason: "new git repository"}
	fi, err := os.Lstat(dotgit)
	if err != nil || !p.belowWritable(dotgit) {
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

// The audit runs on the host, as the user, over trees the sandbox wrote:
// a symlink it planted on the way to a path would make the audit act on
// what the link points to. A gitlink "lnk" with lnk -> ../other made
// fence move the config and hooks of ~/other/.git, a repository outside
// every writable root that the user had used during the session, to the
// quarantine; a .github link to another project's made it move that
// project's hooks (red team 4). So the audit acts only on paths below a
// writable root whose directories are reached without a symlink. The
// writable roots have none (the mounts refuse links), and the sandbox is
// gone when the audit runs: nothing changes between the check and the
// move, unless another session writes the same tree at that moment.

// gitlinkRepo returns the directory of gitlink sub of the repository at
// d, with symlinks resolved as the host's git follows them, if the
// sandbox could have written there: below a writable root. A repository
// elsewhere is the user's.
func (p *Process) gitlinkRepo(d, sub string) (string, bool) {
	if !cleanGitlink(sub) {
		return "", false
	}
	real, err := filepath.EvalSymlinks(filepath.Join(d, filepath.FromSlash(sub)))
	if err != nil || !p.belowWritable(real) {
		return "", false
	}
	return real, true
}

// cleanGitlink reports whether sub is a path git would check out from an
// index: relative, without empty, "." or ".." components. The index is
// the sandbox's to write.
func cleanGitlink(sub string) bool {
	if sub == "" || strings.HasPrefix(sub, "/") {
		return false
	}
	for _, c := range strings.Split(sub, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// belowWritable reports whether q is a writable root or below one, and
// the directory holding q is reached from "/" without a symlink (q itself
// may be one: what the audit moves is q, never what it points to).
func (p *Process) belowWritable(q string) bool {
	if !filepath.IsAbs(q) || filepath.Clean(q) != q || !withinAny(q, p.writable) {
		return false
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, filepath.Dir(q), &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// nameOrLink returns dir/name (name may have several components), or the
// first symlink on the way to it: what the session put at a protected
// name is quarantined, a link there included, never what it points to.
func nameOrLink(dir, name string) string {
	q := dir
	for _, c := range strings.Split(name, "/") {
		q = filepath.Join(q, c)
		if fi, err := os.Lstat(q); err != nil || fi.Mode()&os.ModeSymlink != 0 {
			break
		}
	}
	return q
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
		now, _ := hiddenEntries(d) // an unreadable index was reported by auditNewRepos
		for f := range now {
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
		b, err := readRegular(gitdir, maxGitFile)
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

// maxIndexSize bounds the git index fence reads. The sandbox can write a
// repository's index (git needs to), so it is read as a stream, keeping
// only the entries the audit needs: memory does not grow with the size,
// and the cap bounds the time. The largest indexes known (the Windows
// repository, 3.5 million files) are a few hundred MB; 1 GiB leaves room
// for them, and a crafted one that size costs one to two seconds.
const maxIndexSize = 1 << 30

// openRegular opens p for reading if it is a regular file of at most max
// bytes, and returns its size. It follows no final symlink and does not
// block: a file the sandbox could write may be a fifo (a blocking open
// waits for a writer for good, and fence could not even be interrupted),
// a link to a device, or a sparse file of a terabyte (read whole, it
// crashed fence with "out of memory", red team 4).
func openRegular(p string, max int64) (*os.File, int64, error) {
	return openRegularFlags(p, max, unix.O_NOFOLLOW)
}

// readRegular reads p with [openRegular]'s checks.
func readRegular(p string, max int64) ([]byte, error) {
	return readOpened(openRegular(p, max))
}

// indexEntry is what the audit needs of a git index entry.
type indexEntry struct {
	Path string
	Mode uint32
	// Hidden: assume-unchanged or skip-worktree, so that git status and
	// git diff do not show changes to the file.
	Hidden bool
}

// gitIndex returns the gitlinks and the hidden entries of the index of the
// repository at dir; none when it has no index. An error means the index
// is there but could not be read: what it holds is unknown.
func gitIndex(dir string) ([]indexEntry, error) {
	gitdir := gitDir(dir)
	if gitdir == "" {
		return nil, nil
	}
	f, size, err := openRegular(filepath.Join(gitdir, "index"), maxIndexSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hashLen, err := objectHashLen(gitdir)
	if err != nil {
		return nil, err
	}
	entries, shared, err := parseIndex(bufio.NewReaderSize(io.LimitReader(f, size), 64<<10), size, hashLen)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", f.Name(), err)
	}
	if shared == nil {
		return entries, nil
	}
	// A split index (git update-index --split-index, core.splitIndex):
	// most entries, a gitlink among them, are in the shared index it
	// names. The entries of both are taken, those the main index marks
	// deleted included: one gitlink too many is looked at for nothing,
	// one too few is a repository the audit does not see (red team of
	// the eleventh session: a gitlink in the shared index only).
	sf, ssize, err := openRegular(filepath.Join(gitdir, "sharedindex."+hex.EncodeToString(shared)), maxIndexSize)
	if err != nil {
		return nil, err
	}
	defer sf.Close()
	more, _, err := parseIndex(bufio.NewReaderSize(io.LimitReader(sf, ssize), 64<<10), ssize, hashLen)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", sf.Name(), err)
	}
	return append(entries, more...), nil
}

// objectHashLen returns the length of the object names in the repository
// whose git directory is gitdir: 32 bytes when its config sets
// extensions.objectFormat = sha256, 20 otherwise.
func objectHashLen(gitdir string) (int, error) {
	cfg, err := readRegular(filepath.Join(gitdir, "config"), maxGitFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 20, nil
	}
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(strings.ToLower(string(cfg)), "\n") {
		if strings.Join(strings.Fields(line), "") == "objectformat=sha256" {
			return 32, nil
		}
	}
	return 20, nil
}

// gitlinks returns the paths of the gitlink (submodule) entries in the
// index of the repository at dir, relative to dir, as the index spells
// them.
func gitlinks(dir string) ([]string, error) {
	entries, err := gitIndex(dir)
	var out []string
	for _, e := range entries {
		if e.Mode == gitlinkMode {
			out = append(out, e.Path)
		}
	}
	return out, err
}

// hiddenEntries returns the paths git status does not look at in the
// repository at dir (red team B22); none when its index cannot be read.
func hiddenEntries(dir string) (map[string]bool, error) {
	out := map[string]bool{}
	entries, err := gitIndex(dir)
	for _, e := range entries {
		if e.Hidden {
			out[e.Path] = true
		}
	}
	return out, err
}

const gitlinkMode = 0o160000

// maxIndexName bounds a path in the index: longer ones cannot exist in a
// work tree on Linux (PATH_MAX is 4096), so git never uses them.
const maxIndexName = 64 << 10

// parseIndex reads the entries of a git index (versions 2 to 4) of size
// bytes from r, and returns the gitlinks and the hidden entries. An index
// git would not read either (a wrong signature, version or name length,
// entries past the end) is an error.
func parseIndex(r *bufio.Reader, size int64, hashLen int) (entries []indexEntry, shared []byte, err error) {
	var read int64
	next := func(n int) ([]byte, error) {
		if read+int64(n) > size {
			return nil, io.ErrUnexpectedEOF
		}
		b, err := r.Peek(n)
		if err != nil {
			return nil, err
		}
		r.Discard(n)
		read += int64(n)
		return b, nil
	}
	hdr, err := next(12)
	if err != nil || string(hdr[:4]) != "DIRC" {
		return nil, nil, errors.New("not a git index")
	}
	version := binary.BigEndian.Uint32(hdr[4:8])
	n := binary.BigEndian.Uint32(hdr[8:12])
	if version < 2 || version > 4 {
		return nil, nil, fmt.Errorf("git index version %d", version)
	}
	var prev []byte // the previous entry's name (version 4 starts from it)
	fixed := 40 + hashLen + 2
	for i := uint32(0); i < n; i++ {
		b, err := next(fixed)
		if err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		mode := binary.BigEndian.Uint32(b[24:28])
		flags := binary.BigEndian.Uint16(b[40+hashLen : fixed])
		length := fixed
		hidden := flags&0x8000 != 0 // assume-valid
		if version >= 3 && flags&0x4000 != 0 {
			x, err := next(2)
			if err != nil {
				return nil, nil, fmt.Errorf("entry %d: %w", i, err)
			}
			hidden = hidden || binary.BigEndian.Uint16(x)&0x4000 != 0 // skip-worktree
			length += 2
		}
		kept := 0 // of the previous name
		if version == 4 {
			// The length of the previous name to drop, an
			// offset-encoded varint.
			c, err := next(1)
			if err != nil {
				return nil, nil, fmt.Errorf("entry %d: %w", i, err)
			}
			strip := int(c[0] & 0x7f)
			for c[0]&0x80 != 0 {
				if c, err = next(1); err != nil || strip > maxIndexName {
					return nil, nil, fmt.Errorf("entry %d: bad name prefix", i)
				}
				strip = ((strip + 1) << 7) | int(c[0]&0x7f)
			}
			if strip > len(prev) {
				return nil, nil, fmt.Errorf("entry %d: bad name prefix", i)
			}
			kept = len(prev) - strip
		}
		rest, err := r.ReadSlice(0)
		if err != nil || read+int64(len(rest)) > size || kept+len(rest)-1 > maxIndexName {
			return nil, nil, fmt.Errorf("entry %d: bad name", i)
		}
		read += int64(len(rest))
		prev = append(prev[:kept], rest[:len(rest)-1]...)
		if l := int(flags & 0xfff); l < 0xfff && l != len(prev) {
			return nil, nil, fmt.Errorf("entry %d: name length %d in its flags, %d in fact", i, l, len(prev))
		}
		if version < 4 {
			// Entries are padded with NULs to a multiple of 8 bytes.
			length += len(rest)
			if _, err := next((8 - length%8) % 8); err != nil {
				return nil, nil, fmt.Errorf("entry %d: %w", i, err)
			}
		}
		if hidden || mode == gitlinkMode {
			entries = append(entries, indexEntry{Path: string(prev), Mode: mode, Hidden: hidden})
		}
	}
	// Extensions follow, up to the checksum. Only "link" matters: the
	// index is split, and it names the shared index (its hash first).
	for read+8 <= size-int64(hashLen) {
		h, err := next(8)
		if err != nil {
			return nil, nil, fmt.Errorf("extension: %w", err)
		}
		// Copied: h is the reader's buffer, which the next read reuses.
		sig, n := string(h[:4]), int64(binary.BigEndian.Uint32(h[4:8]))
		if n > size-int64(hashLen)-read {
			return nil, nil, fmt.Errorf("extension %q: %d bytes, past the end", sig, n)
		}
		if sig == "link" {
			if n < int64(hashLen) {
				return nil, nil, errors.New(`extension "link": too short`)
			}
			b, err := next(hashLen)
			if err != nil {
				return nil, nil, fmt.Errorf(`extension "link": %w`, err)
			}
			if strings.Trim(string(b), "\x00") != "" {
				shared = append([]byte(nil), b...)
			}
			n -= int64(hashLen)
		}
		if d, err := r.Discard(int(n)); err != nil || int64(d) != n {
			return nil, nil, fmt.Errorf("extension %q: cut short", sig)
		}
		read += n
	}
	return entries, shared, nil
}

// reportUnreadableIndex tells the user that the index of the repository in
// dir could not be read at the end of the session.
func reportUnreadableIndex(spec *Spec, dir string, err error) {
	msg := fmt.Sprintf("the git index of the repository in %s could not be read (%v): the submodules it lists are unknown, so every repository below it that was created or changed during the session was treated as new; git does not work there with this index: inspect it, then move it away and run git reset (which rebuilds it from HEAD)", sanitizeLine(dir), sanitizeLine(err.Error()))
	if spec.Notices != nil {
		fmt.Fprintf(spec.Notices, "fence: %s\n", msg)
	}
	if spec.Monitor != nil {
		fmt.Fprintf(spec.Monitor, "[fence:fs] unreadable index in %s\n", sanitizeLine(dir))
	}
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
