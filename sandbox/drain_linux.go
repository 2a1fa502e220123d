package sandbox

import "time"

// add counts a connection accepted from the sandbox.
func (d *drain) add() {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
}

// wait waits up to limit for the copies out of the sandbox to end.
func (d *drain) wait(limit time.Duration) {
	d.mu.Lock()
	if d.n == 0 {
		d.mu.Unlock()
		return
	}
	if d.idle == nil {
		d.idle = make(chan struct{})
	}
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
	case <-time.After(limit):
	}
}
