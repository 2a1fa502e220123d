package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A protected path that did not exist when the session started cannot be
// covered by a mount without leaving a placeholder in the user's tree
// (which DESIGN.md §6.3 forbids). Instead the client, outside the sandbox,
// watches the directory it would appear in with inotify and moves whatever
// appears to the quarantine in fence's state directory at once, again
// when the session ends, and tells the user. The watched directories are
// pinned (mount points inside), so the sandbox cannot move them away.

// watcher is the client's inotify loop over a session's watches.
type watcher struct {
	spec *Spec
	// f is the inotify instance, non-blocking: its loop waits in Go's
	// netpoller, so stop wakes it with a deadline on the same OS thread
	// (a poll in a thread of its own took 50 µs to wake on the way out).
	f       *os.File
	byWD    map[int32][]watch
	all     []watch
	qdir    string
	mu      sync.Mutex // guards quarantine moves, qdir and failed
	stopped chan struct{}
	// modes are the watched directories' permissions at start: the
	// sandbox can chmod them (it owns them) to make the move fail, and
	// the quarantine puts them back (red team B15).
	modes map[string]uint32
	// final is set for the sweep after the sandbox is gone; what cannot
	// be quarantined then is in failed, and the session fails loudly.
	final  bool
	failed []string
}

func newWatcher(ws []watch, spec *Spec) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return nil, inotifyLimit(fmt.Errorf("watch for protected paths: inotify_init1: %w", err))
	}
	f, err := pollable(fd, "inotify") // else its loop could not be stopped
	if err != nil {
		return nil, err
	}
	w := &watcher{spec: spec, f: f, byWD: map[int32][]watch{}, all: ws, stopped: make(chan struct{}), modes: map[string]uint32{}}
	// One watch per directory: a project's missing protected names
	// (.envrc, .vscode, lefthook.yml, ...) are two dozen in the same one,
	// and adding the same directory again only returns the same wd.
	wds := map[string]int32{}
	for _, x := range ws {
		wd, ok := wds[x.Dir]
		if !ok {
			var st unix.Stat_t
			lerr := unix.Lstat(x.Dir, &st)
			if lerr == nil {
				w.modes[x.Dir] = st.Mode & 0o7777
			}
			n, err := unix.InotifyAddWatch(fd, x.Dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_ONLYDIR|unix.IN_DONT_FOLLOW)
			if errors.Is(err, unix.ENOTDIR) && lerr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = errSwapped
			}
			if err != nil {
				f.Close()
				return nil, inotifyLimit(fmt.Errorf("watch %q for protected paths: %w", x.Dir, err))
			}
			wd = int32(n)
			wds[x.Dir] = wd
		}
		w.byWD[wd] = append(w.byWD[wd], x)
	}
	go w.loop()
	return w, nil
}

// inotifyLimit adds what to do to err when it is a per-user inotify
// limit (see [InotifyLimitHint]).
func inotifyLimit(err error) error {
	if hint := InotifyLimitHint(err); hint != "" {
		return &hintedError{err: err, hint: hint}
	}
	return err
}

// InotifyLimitHint says what to do when err is a per-user inotify limit
// reached (EMFILE: instances, ENOSPC: watches), "" for other errors. The
// user's other programs share the limits, and a sandboxed one may hold
// them all to keep fence from starting (ATTACKS.md C-11); fence never
// starts without its watches.
func InotifyLimitHint(err error) string {
	var what, limit string
	switch {
	case errors.Is(err, unix.EMFILE):
		what, limit = "instance", "max_user_instances"
	case errors.Is(err, unix.ENOSPC):
		what, limit = "watch", "max_user_watches"
	default:
		return ""
	}
	n, _ := os.ReadFile("/proc/sys/fs/inotify/" + limit)
	return fmt.Sprintf("this user's programs hold every inotify %s the kernel allows (fs.inotify.%s = %s); "+
		"see which with: find /proc/*/fd -lname 'anon_inode:inotify' 2>/dev/null | cut -d/ -f3 | sort | uniq -c; or raise the limit (sysctl)",
		what, limit, strings.TrimSpace(string(n)))
}

// loop quarantines what the events name until stop sets a read deadline.
// It sweeps first: the command may have started before the watches were
// added, and what it created then made no event.
func (w *watcher) loop() {
	defer close(w.stopped)
	w.sweep()
	buf := make([]byte, 4096) // room for 15 events with the longest names: the loop reads again
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			// The deadline, or an instance that cannot be read: the
			// final sweep covers what the loop would have seen.
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := ""
			if ev.Len > 0 {
				raw := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				name = strings.TrimRight(string(raw), "\x00")
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				w.sweep()
				continue
			}
			for _, x := range w.byWD[ev.Wd] {
				if x.Name == name {
					w.quarantine(x)
				} else if x.Keep != nil && name != "" && !x.Keep[name] {
					y := x
					y.Name, y.Protected = name, filepath.Join(x.Dir, name)
					w.quarantine(y)
				}
			}
		}
	}
}

// stop ends the loop and sweeps once more: whatever exists now was
// created during the session. It runs after the sandbox is gone, so
// nothing can undo the modes the quarantine sets; it returns the paths
// that still could not be quarantined.
func (w *watcher) stop() []string {
	w.f.SetReadDeadline(time.Now())
	<-w.stopped
	w.mu.Lock()
	w.final = true
	w.mu.Unlock()
	w.sweep()
	// A watched directory made read-only in the sandbox would stop the
	// user's own tools (and the next session's quarantine): give the
	// owner back the write and search access it had at start.
	for d, m := range w.modes {
		addMode(d, m&0o300)
	}
	if w.spec.Discard != nil {
		w.spec.Discard(w.f)
	} else {
		w.f.Close()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

func (w *watcher) sweep() {
	// A directory with several watched names is listed once, as the plan
	// does (fsCache): most of the names are missing (.envrc, .vscode,
	// lefthook.yml, ...), an lstat each on the client's way out. A
	// protected symlink is always looked at: missing, it is put back.
	perDir := map[string]int{}
	for _, x := range w.all {
		if x.Keep == nil && x.Link == "" {
			perDir[x.Dir]++
		}
	}
	listed := map[string]map[string]bool{}
	for _, x := range w.all {
		if x.Keep == nil {
			if x.Link == "" && perDir[x.Dir] >= listAfter && !strings.Contains(x.Name, "/") {
				names, ok := listed[x.Dir]
				if !ok {
					names = listNames(x.Dir) // nil: unreadable, or too long to list
					listed[x.Dir] = names
				}
				if names != nil && !names[x.Name] {
					continue
				}
			}
			w.quarantine(x)
			continue
		}
		ents, _ := os.ReadDir(x.Dir)
		for _, e := range ents {
			if !x.Keep[e.Name()] {
				y := x
				y.Name, y.Protected = e.Name(), filepath.Join(x.Dir, e.Name())
				w.quarantine(y)
			}
		}
	}
}

// quarantine moves Dir/Name, if it exists, to the quarantine directory.
func (w *watcher) quarantine(x watch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := filepath.Join(x.Dir, x.Name)
	fi, err := os.Lstat(p)
	if x.Link != "" {
		// A protected symlink that existed at start: only a change is a
		// problem. Quarantine the replacement and put the link back.
		if err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if l, _ := os.Readlink(p); l == x.Link {
				return
			}
		}
		if err == nil {
			w.move(x, p)
		}
		if _, err := os.Lstat(p); err != nil {
			restore := w.openDir(filepath.Dir(p))
			err := os.Symlink(x.Link, p)
			restore()
			if err == nil && w.spec.Notices != nil {
				fmt.Fprintf(w.spec.Notices, "fence: restored the symlink %s -> %s\n", sanitizeLine(p), sanitizeLine(x.Link))
			}
		}
		return
	}
	if err != nil {
		return
	}
	base := stateDir(w.spec.Env)
	if base != "" && within(base, p) {
		// The quarantine lives inside what was created (~/.local when
		// ~/.local/bin is protected): move the protected path itself, or
		// the first symlink on the way to it, never through a link.
		q := p
		rel, _ := filepath.Rel(p, x.Protected)
		for _, el := range strings.Split(rel, "/") {
			if el == "." || el == "" {
				break
			}
			fi, err := os.Lstat(q)
			if err != nil || fi.Mode()&os.ModeSymlink != 0 {
				break
			}
			q = filepath.Join(q, el)
		}
		if _, err := os.Lstat(q); err != nil || within(base, q) {
			return
		}
		p = q
	}
	w.move(x, p)
}

// move moves p to the quarantine directory and reports it.
func (w *watcher) move(x watch, p string) {
	if w.qdir == "" {
		base := stateDir(w.spec.Env)
		if base == "" {
			w.report(x, p, "", fmt.Errorf("no state directory for the quarantine"))
			return
		}
		w.qdir = filepath.Join(base, "quarantine", time.Now().UTC().Format("20060102T150405.000000000Z"))
		if err := os.MkdirAll(w.qdir, 0o700); err != nil {
			w.report(x, p, "", err)
			w.qdir = ""
			return
		}
	}
	dst := filepath.Join(w.qdir, strings.TrimPrefix(p, "/"))
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); err != nil {
			break
		}
		dst = filepath.Join(w.qdir, strings.TrimPrefix(p, "/")) + fmt.Sprintf(".%d", i)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		w.report(x, p, "", err)
		return
	}
	// The sandbox owns what it creates and may have made it, or the
	// directory it is in, read-only: a rename needs write permission on
	// the parent, and on a directory itself when it changes parent. Give
	// the owner write access back first, without following links (red
	// team B15). While the sandbox runs it can race this; retry, and the
	// final sweep runs when it is gone.
	var err error
	for try := 0; try < 3; try++ {
		restore := w.openDir(filepath.Dir(p))
		addMode(p, 0o700)
		err = os.Rename(p, dst)
		if err != nil {
			// Another file system: copy without following links, then remove.
			openTree(p)
			if _, lerr := os.Lstat(dst); lerr == nil {
				openTree(dst)
				os.RemoveAll(dst)
			}
			if err = copyTree(p, dst); err == nil {
				err = os.RemoveAll(p)
			}
		}
		restore()
		if err == nil {
			break
		}
	}
	w.report(x, p, dst, err)
}

// openDir gives the owner write and search permission on dir for a move,
// and returns a function that puts back the mode dir had when the
// session started (or leaves it writable if it was not watched).
func (w *watcher) openDir(dir string) func() {
	if addMode(dir, 0o300) != nil {
		return func() {}
	}
	m, ok := w.modes[dir]
	if !ok {
		return func() {}
	}
	return func() { setMode(dir, m) }
}

// addMode adds bits to the permissions of p if p is a directory (or, for
// bits 0o400, a regular file), never following a symlink. It works on an
// O_PATH handle through /proc/self/fd, so a mode of 0 is no obstacle.
func addMode(p string, bits uint32) error {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
	case unix.S_IFREG:
		bits &= 0o400
	default:
		return nil
	}
	if st.Mode&bits == bits {
		return nil
	}
	return unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), (st.Mode&0o7777)|bits)
}

// setMode sets the permissions of directory p without following a link.
func setMode(p string, mode uint32) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil && st.Mode&0o7777 != mode {
		unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), mode)
	}
}

// openTree makes every directory under p searchable and writable and
// every file readable by the owner, so it can be copied and removed.
func openTree(p string) {
	if addMode(p, 0o700) != nil {
		return
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return
	}
	for _, e := range ents {
		c := filepath.Join(p, e.Name())
		if e.IsDir() {
			openTree(c)
		} else if e.Type().IsRegular() {
			addMode(c, 0o400)
		}
	}
}

func (w *watcher) report(x watch, p, dst string, err error) {
	if err != nil {
		if w.final {
			w.failed = append(w.failed, p)
		}
		// The path (and the error, which may repeat it) can hold names
		// the sandbox chose: escaped for the terminal (ATTACKS.md T-13).
		msg := sanitizeLine(fmt.Sprintf("%s (%s, protected) was created inside the sandbox and could not be quarantined: %v; inspect it before using it", p, x.Reason, err))
		if w.spec.Notices != nil {
			fmt.Fprintf(w.spec.Notices, "fence: %s\n", msg)
		}
		if w.spec.Monitor != nil {
			fmt.Fprintf(w.spec.Monitor, "[fence:fs] %s\n", msg)
		}
		return
	}
	if w.spec.Notices != nil {
		fmt.Fprintf(w.spec.Notices, "fence: %s was created inside the sandbox; it is protected (%s), so it was moved to %s\n",
			sanitizeLine(p), x.Reason, sanitizeLine(dst))
	}
	if w.spec.Monitor != nil {
		fmt.Fprintf(w.spec.Monitor, "[fence:fs] quarantined %s (protected: %s) -> %s\n", sanitizeLine(p), x.Reason, sanitizeLine(dst))
	}
}

// stateDir is $XDG_STATE_HOME/fence, or ~/.local/state/fence.
func stateDir(env []string) string {
	if s, ok := lookupEnv(env, "XDG_STATE_HOME"); ok && filepath.IsAbs(s) {
		return filepath.Join(s, "fence")
	}
	home, _ := lookupEnv(env, "HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".local", "state", "fence")
}

// copyTree copies src to dst without following symlinks.
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, t)
		case fi.IsDir():
			return os.MkdirAll(t, 0o700)
		case fi.Mode().IsRegular():
			return copyFile(p, t)
		}
		return nil // sockets, fifos, devices: dropped
	})
}

// copyFile copies the regular file src to dst. It checks again on the
// opened file, which it opens without blocking: the sandbox may have
// swapped src for a fifo since the walk looked at it, and a blocking open
// of a fifo would hang the client until a writer came. A fifo is dropped.
func copyFile(src, dst string) error {
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	in := os.NewFile(uintptr(fd), src)
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// sanitizeLine makes an untrusted string safe to print on a terminal
// (ATTACKS.md T-13).
func sanitizeLine(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		if r >= 0x80 && (!unicode.IsPrint(r) || unicode.Is(unicode.Cf, r)) {
			// Bidi overrides (U+202E) and other invisible format
			// characters would reorder or hide what the line says.
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
