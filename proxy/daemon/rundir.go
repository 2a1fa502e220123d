package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// EnsureDir makes dir (whose parent must exist) a private directory of the
// current user: it creates it 0700 and refuses a directory that is a
// symlink, is owned by someone else, or is open to group or others, since
// whoever controls it controls the daemon's sockets.
func EnsureDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("runtime directory %q: %w", dir, err)
	}
	return checkPrivate(dir)
}

func checkPrivate(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("runtime directory %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("runtime directory %q: not a directory (a symlink or a file is refused)", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("runtime directory %q: cannot read its owner", dir)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("runtime directory %q: owned by uid %d, not by you (uid %d): refusing to use it", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("runtime directory %q: mode %04o lets others in; want 0700", dir, fi.Mode().Perm())
	}
	return nil
}
