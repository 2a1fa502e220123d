package proxy

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// AcceptBackoff paces an accept loop through the errors after which its
// listener still works: the process or the system out of descriptors or
// memory, a connection aborted before it was accepted, a timeout. Returning
// on them, as the session and control listeners did, ended them for good
// (a sandbox that exhausted the daemon's descriptors cut every other
// session's network, and the daemon exited). It waits as net/http's Server
// does: 5 ms, doubled at each error in a row, up to 1 s.
type AcceptBackoff struct {
	delay  time.Duration
	logged time.Time
}

// Retry reports whether err is an error to retry after; it has then
// waited. logf, if set, gets a line about it, at most one every 10 s:
// the errors go on as long as descriptors are short.
func (b *AcceptBackoff) Retry(err error, logf func(format string, args ...any)) bool {
	if !retryable(err) {
		return false
	}
	if b.delay == 0 {
		b.delay = 5 * time.Millisecond
	} else if b.delay *= 2; b.delay > time.Second {
		b.delay = time.Second
	}
	if logf != nil && time.Since(b.logged) > 10*time.Second {
		b.logged = time.Now()
		logf("accept: %v; retrying (for %v now)", err, b.delay)
	}
	time.Sleep(b.delay)
	return true
}

// Reset starts the waits again from the shortest, after an accept that
// worked.
func (b *AcceptBackoff) Reset() { b.delay = 0 }

func retryable(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
