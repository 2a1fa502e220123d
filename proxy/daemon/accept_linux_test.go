package daemon

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/proxy/control"
)

// TestOutOfDescriptors: a daemon out of descriptors for a moment (its
// soft RLIMIT_NOFILE lowered under it, as a flood would exhaust it) goes on:
// once descriptors are back, its control socket and a running session's
// proxy answer the connections that waited. The control socket's accept
// loop returned on EMFILE and the daemon exited; a session's returned, and
// the sandbox had no network from then on.
func TestOutOfDescriptors(t *testing.T) {
	rt := filepath.Join(shortTemp(t), "rt")
	d := spawnDaemon(t, rt)
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = d.Wait(); close(exited) }()
	defer func() {
		d.Process.Kill()
		<-exited
	}()
	web := server(t)
	proj := shortTemp(t)
	writePolicy(t, proj, fmt.Sprintf("local %d\n", web))
	lease, info := open(t, rt, proj)
	defer lease.Close()
	url := fmt.Sprintf("http://127.0.0.1:%d/", web)
	if code, err := get(info.Dir, url); err != nil || code != 200 {
		t.Fatalf("before: %d %v", code, err)
	}

	pid := d.Process.Pid
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	// No new descriptor at all: every accept fails with EMFILE.
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 3, Max: old.Max}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil && err != unix.ESRCH {
				t.Errorf("prlimit: %v", err)
			}
		}
	}
	defer restore()
	status := make(chan error, 1)
	go func() {
		_, err := control.Do(rt, control.Request{Op: control.OpStatus})
		status <- err
	}()
	type result struct {
		code int
		err  error
	}
	proxied := make(chan result, 1)
	go func() {
		code, err := get(info.Dir, url)
		proxied <- result{code, err}
	}()
	select {
	case <-exited:
		t.Fatalf("the daemon exited out of descriptors: %v", exitErr)
	case <-time.After(500 * time.Millisecond):
	}
	restore()
	select {
	case err := <-status:
		if err != nil {
			t.Errorf("control socket after descriptors came back: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("control socket after descriptors came back: no answer in 5 s")
	}
	// get gives up after 3 s.
	if r := <-proxied; r.err != nil || r.code != 200 {
		t.Errorf("session proxy after descriptors came back: %d %v", r.code, r.err)
	}
	if code, err := get(info.Dir, url); err != nil || code != 200 {
		t.Errorf("session proxy, new connection: %d %v", code, err)
	}
	select {
	case <-exited:
		t.Fatalf("the daemon exited: %v", exitErr)
	default:
	}
}
