package sandbox

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Files fence reads on the host that a sandbox may have written (a git
// index, .gitmodules, an .envrc): read without blocking on a fifo, never
// more than a cap, regular files only.

// maxGitFile bounds the small files fence reads where a sandbox could
// have written them: git pointer files, configs and .gitmodules, an
// .envrc; a few hundred bytes in practice.
const maxGitFile = 1 << 20

// openRegularFlags opens p for reading if it is a regular file of at most
// max bytes, and returns its size; flags (O_NOFOLLOW or 0) are added to
// the open. It does not block: a file the sandbox could write may be a
// fifo (a blocking open waits for a writer for good, and fence could not
// even be interrupted), a link to a device, or a sparse file of a
// terabyte (read whole, it crashed fence with "out of memory").
func openRegularFlags(p string, max int64, flags int) (*os.File, int64, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|flags|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, 0, &os.PathError{Op: "open", Path: p, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, 0, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("open %q: not a regular file", p)
	}
	if st.Size > max {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("open %q: %d bytes, more than fence reads (%d)", p, st.Size, max)
	}
	return os.NewFile(uintptr(fd), p), st.Size, nil
}

// readFollowed reads p with [openRegular]'s checks and a cap of
// maxGitFile, but follows symlinks as the host's tools do: the plan reads
// files a sandbox of an earlier session may have written (.gitmodules,
// .git pointer files, commondir, .envrc and what it loads, git includes),
// and a fifo there hung every later start, a sparse terabyte crashed it.
func readFollowed(p string) ([]byte, error) {
	return readOpened(openRegularFlags(p, maxGitFile, 0))
}

func readOpened(f *os.File, size int64, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, size))
}
