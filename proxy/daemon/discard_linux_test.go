package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A descriptor handed over a lease (control.Conn.Discard) is held by the
// daemon until the client is done with the lease (so that the daemon's
// close is the last one), then closed; the session still ends with its
// final counts.
func TestLeaseDiscard(t *testing.T) {
	rt := filepath.Join(shortTemp(t), "rt")
	startDaemon(t, rt, time.Minute)
	dir := t.TempDir()
	writePolicy(t, dir, "allow x.example\n")
	c, _ := open(t, rt, dir)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !c.Discard(w) {
		t.Fatal("Discard: not sent")
	}
	// Our copy of the write end is closed: the pipe stays open while the
	// daemon holds its copy, and reaches EOF once the daemon closes it.
	buf := make([]byte, 1)
	r.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := r.Read(buf); !os.IsTimeout(err) {
		t.Fatalf("pipe read before the lease ended: %d %v (want a timeout: the daemon holds it)", n, err)
	}
	c.CloseWrite()
	for {
		if _, err := c.Next(); err != nil {
			break
		}
	}
	if c.Final() == nil {
		t.Error("no final counts after a Discard")
	}
	c.Close()
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(buf); n != 0 || err == nil || os.IsTimeout(err) {
		t.Fatalf("pipe read after the lease ended: %d %v (the daemon kept the descriptor)", n, err)
	}
}
