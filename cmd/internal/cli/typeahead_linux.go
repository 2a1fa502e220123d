package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// discardTypeahead drops input waiting on the terminal f, so that a question
// is answered by what the user types after seeing it.
func discardTypeahead(f *os.File) {
	_ = unix.IoctlSetInt(int(f.Fd()), unix.TCFLSH, unix.TCIFLUSH)
}
