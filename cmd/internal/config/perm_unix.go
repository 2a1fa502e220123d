//go:build unix

package config

import (
	"io/fs"
	"syscall"
)

// openNonblock keeps opening a FIFO from blocking.
const openNonblock = syscall.O_NONBLOCK

// fileOwner returns the uid owning fi.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
