package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/shellhook"
)

// shellFiles are one session's files in the shell directory
// ([config.ShellDir]): generated init files and the notice file (read-only
// inside), the handoff file and the project's history directory (writable
// inside).
//
// Warning: a sandbox that could write the shell directory before fence
// protected it may have left links there. The host never follows one: the
// directories are opened one level at a time without following links, the
// session's directory is held open, and the notice and the clean-up go
// through the held descriptors.
type shellFiles struct {
	dir, handoff, notice, history string
	sessions                      *os.File // the sessions directory
	name                          string   // this session's directory in it, once made
	self                          *os.File // and held open
}

// plantedLinkError is a symbolic link where fence keeps a directory or file
// of its own.
type plantedLinkError struct {
	path, target string
}

func (e *plantedLinkError) Error() string {
	return fmt.Sprintf("%q is a symbolic link (to %q) where fence keeps its own files; fence never makes one there, so something else did (a sandbox that could write the home directory, before fence protected it)", e.path, e.target)
}

// hint says how to recover.
func (e *plantedLinkError) hint() string {
	return fmt.Sprintf("remove the link ('rm %s'; what it points to is left alone) and start the shell again", e.path)
}

// newShellFiles makes them in base, the shell directory, the handoff file
// only if asked.
func newShellFiles(base, root string, handoff bool) (_ *shellFiles, err error) {
	key := shellhook.HistoryKey(root)
	if strings.ContainsRune(key, '/') || key == "." || key == ".." {
		return nil, fmt.Errorf("BUG: history key %q is not a file name", key)
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o700); err != nil {
		return nil, err
	}
	parent, err := os.Open(filepath.Dir(base))
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	shellDir, err := openDirAt(parent, filepath.Base(base), true)
	if err != nil {
		return nil, err
	}
	defer shellDir.Close()
	history, err := openDirAt(shellDir, "history", true)
	if err != nil {
		return nil, err
	}
	defer history.Close()
	own, err := openDirAt(history, key, true)
	if err != nil {
		return nil, err
	}
	own.Close()
	sessions, err := openDirAt(shellDir, "sessions", true)
	if err != nil {
		return nil, err
	}
	sf := &shellFiles{sessions: sessions, history: own.Name()}
	defer func() {
		if err != nil {
			sf.remove()
		}
	}()
	cleanStaleSessions(sessions)
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	name := strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(rnd[:])
	if err := unix.Mkdirat(int(sessions.Fd()), name, 0o700); err != nil {
		return nil, &os.PathError{Op: "mkdir", Path: filepath.Join(sessions.Name(), name), Err: err}
	}
	sf.name = name
	if sf.self, err = openDirAt(sessions, name, false); err != nil {
		return nil, err
	}
	sf.dir = sf.self.Name()
	sf.notice = filepath.Join(sf.dir, "notice")
	made := []string{"notice"}
	if handoff {
		sf.handoff = filepath.Join(sf.dir, "handoff")
		made = append(made, "handoff")
	}
	for _, n := range made {
		fd, err := unix.Openat(int(sf.self.Fd()), n, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, &os.PathError{Op: "create", Path: filepath.Join(sf.dir, n), Err: err}
		}
		unix.Close(fd)
	}
	return sf, nil
}

// openDirAt opens the directory name in dir, creating it first if create,
// without following a symbolic link. The result is named by its path.
func openDirAt(dir *os.File, name string, create bool) (*os.File, error) {
	path := filepath.Join(dir.Name(), name)
	if create {
		if err := unix.Mkdirat(int(dir.Fd()), name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, &os.PathError{Op: "mkdir", Path: path, Err: err}
		}
	}
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		var st unix.Stat_t
		if unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			target := make([]byte, 4096)
			n, _ := unix.Readlinkat(int(dir.Fd()), name, target)
			return nil, &plantedLinkError{path: path, target: string(target[:max(n, 0)])}
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// writeNotice replaces the notice file's content with msg, through the
// held session directory and never through a link or into a file with
// another name.
func (s *shellFiles) writeNotice(msg string) error {
	fd, err := unix.Openat(int(s.self.Fd()), "notice", unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: s.notice, Err: err}
	}
	f := os.NewFile(uintptr(fd), s.notice)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: s.notice, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return fmt.Errorf("notice %q: not the file fence made (a %o with %d links)", s.notice, st.Mode&unix.S_IFMT, st.Nlink)
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteString(msg)
	return err
}

// remove removes the session's directory, through the held sessions
// directory.
func (s *shellFiles) remove() {
	if s.self != nil {
		s.self.Close()
	}
	if s.name != "" {
		removeAt(s.sessions, s.name, 0)
	}
	s.sessions.Close()
}

// cleanStaleSessions removes the files of sessions whose fence client is
// gone (killed, or the machine rebooted).
func cleanStaleSessions(sessions *os.File) {
	names, err := readDirNames(sessions)
	if err != nil {
		return
	}
	for _, n := range names {
		pidStr, _, _ := strings.Cut(n, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			removeAt(sessions, n, 0)
		}
	}
}

// readDirNames lists dir from its start, leaving dir open.
func readDirNames(dir *os.File) ([]string, error) {
	fd, err := unix.Openat(int(dir.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), dir.Name())
	defer f.Close()
	return f.Readdirnames(-1)
}

// maxRemoveDepth bounds removeAt: a session directory is two levels deep.
const maxRemoveDepth = 8

// removeAt removes name in dir and, if it is a directory, everything in it,
// without following a symbolic link anywhere: a link is removed, not what
// it points to.
func removeAt(dir *os.File, name string, depth int) {
	var st unix.Stat_t
	if unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Unlinkat(int(dir.Fd()), name, 0)
		return
	}
	if depth < maxRemoveDepth {
		if sub, err := openDirAt(dir, name, false); err == nil {
			names, _ := readDirNames(sub)
			for _, n := range names {
				removeAt(sub, n, depth+1)
			}
			sub.Close()
		}
	}
	unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR)
}

// shellDirOf is the shell directory a policy protects, where the session
// files must go.
func shellDirOf(res *config.Resolved) string {
	if res.Sandbox.ShellDir != "" {
		return res.Sandbox.ShellDir
	}
	return config.ShellDir()
}
