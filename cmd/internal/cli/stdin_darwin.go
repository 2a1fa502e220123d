package cli

import (
	"bytes"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reopenReadOnly opens the terminal behind f again, read-only (see the
// Linux one), by the path fcntl(F_GETPATH) gives. Untested on a Mac.
func reopenReadOnly(f *os.File) (*os.File, error) { return reopenTerminal(f, unix.O_RDONLY) }

// reopenTerminal opens the terminal behind f again with mode (O_RDONLY,
// O_WRONLY).
func reopenTerminal(f *os.File, mode int) (*os.File, error) {
	var buf [unix.PathMax]byte
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), unix.F_GETPATH, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		return nil, errno
	}
	p := string(buf[:bytes.IndexByte(buf[:], 0)])
	fd, err := unix.Open(p, mode|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}
