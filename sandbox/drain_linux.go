package sandbox

import "time"

// wait waits up to limit for the copies out of the sandbox to end.
func (d *drain) wait(limit time.Duration) {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
	}
}
