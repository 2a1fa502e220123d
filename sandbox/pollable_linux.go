package sandbox

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// pollable makes fd (which it owns from then on) a non-blocking file in
// Go's netpoller, or fails: a goroutine that waits on it then holds no OS
// thread. The client's goroutines that waited in blocking poll and recvmsg
// calls for the whole session (the init's socket and pidfd, the quarantine
// watcher's inotify instance) were threads of their own, each a hand-off
// to wake and one more thread to end when the client exits. A pollable
// file's read can also be ended by a deadline (the watcher's stop).
func pollable(fd int, name string) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: not pollable: %w", name, err)
	}
	return f, nil
}
