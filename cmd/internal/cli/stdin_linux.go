package cli

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// reopenReadOnly opens the terminal behind f again, read-only: a new open
// file description of the same terminal. The shell's descriptor 0 is
// usually open for reading and writing, and a command given it could
// write escape sequences to the terminal past the output filter (OSC 52
// clipboard, OSC 7, titles). Inside, opening it again for writing through
// /proc/self/fd/0 is denied by Landlock: the host's terminal lies below
// none of its rules. unix.Open, not os.OpenFile: the descriptor must stay
// blocking for the command.
func reopenReadOnly(f *os.File) (*os.File, error) { return reopenTerminal(f, unix.O_RDONLY) }

// reopenTerminal opens the terminal behind f again with mode (O_RDONLY,
// O_WRONLY).
func reopenTerminal(f *os.File, mode int) (*os.File, error) {
	p := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	fd, err := unix.Open(p, mode|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
