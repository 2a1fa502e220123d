package daemon

import (
	"maps"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/proxy/control"
)

// fakeInits stands in for sandbox.WarmPool: it hands out the two ends of a
// pipe as "socket" and "pidfd", to clients whose context is "match".
type fakeInits struct {
	mu      sync.Mutex
	refills int
	afters  []time.Duration // each refill's pause
	closed  bool
}

func (f *fakeInits) Take(context, exe string, clientPID int) (int, int, string, string) {
	if context != "match" && context != "" || exe != "" && exe != "match-exe" {
		return -1, -1, "", "context differs"
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return -1, -1, "", err.Error()
	}
	return p[0], p[1], "match", ""
}

func (f *fakeInits) Refill(after time.Duration) {
	f.mu.Lock()
	f.refills++
	f.afters = append(f.afters, after)
	f.mu.Unlock()
}

func (f *fakeInits) State() string { return "ready" }

func (f *fakeInits) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

// lastPause is the pause of the last refill asked for.
func (f *fakeInits) lastPause() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.afters[len(f.afters)-1]
}

func (f *fakeInits) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refills
}

// The daemon passes a pool's descriptors to a matching client over the
// control socket, says why to another, shows the pool's state in status,
// asks for a refill when it starts and when a session's client is done
// (not while a client waits), and closes the pool when it exits.
func TestWarmInitHandover(t *testing.T) {
	rt := filepath.Join(shortTemp(t), "rt")
	pool := &fakeInits{}
	h := startDaemonWith(t, Options{Dir: rt, Idle: time.Minute, Inits: pool})
	if n := pool.count(); n != 1 {
		t.Fatalf("refills at start: %d, want 1", n)
	}

	sock, pidfd, reason, err := control.TakeInit(rt, "match")
	if err != nil || sock < 0 || pidfd < 0 {
		t.Fatalf("TakeInit: sock %d pidfd %d reason %q err %v", sock, pidfd, reason, err)
	}
	checkPassedPipe(t, sock, pidfd)
	if n := pool.count(); n != 1 {
		t.Fatalf("refills after a handover: %d, want still 1 (not while a client waits)", n)
	}

	sock, _, reason, err = control.TakeInit(rt, "other")
	if err != nil || sock >= 0 || reason != "context differs" {
		t.Fatalf("TakeInit with another context: sock %d reason %q err %v", sock, reason, err)
	}

	resp, err := control.Do(rt, control.Request{Op: control.OpStatus})
	if err != nil || resp.Status.WarmInit != "ready" {
		t.Fatalf("status: %+v %v", resp, err)
	}

	dir := t.TempDir()
	writePolicy(t, dir, "allow x.example\n")
	endSession := func() {
		t.Helper()
		c, _ := open(t, rt, dir)
		before := pool.count()
		c.CloseWrite()
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
		c.Close()
		deadline := time.Now().Add(5 * time.Second)
		for pool.count() == before {
			if time.Now().After(deadline) {
				t.Fatal("no refill after a session ended")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// After a lone client, the next init boots after a pause; after one
	// that came soon after the last exit (a burst), at once.
	defer func(saved time.Duration) { burstGap = saved }(burstGap)
	burstGap = time.Hour
	endSession()
	if p := pool.lastPause(); p != refillPause {
		t.Errorf("refill after a lone client: pause %v, want %v", p, refillPause)
	}
	if sock, pidfd, _, err := control.TakeInit(rt, "match"); err != nil || sock < 0 {
		t.Fatalf("TakeInit in a burst: %v", err)
	} else {
		unix.Close(sock)
		unix.Close(pidfd)
	}
	endSession()
	if p := pool.lastPause(); p != 0 {
		t.Errorf("refill in a burst: pause %v, want none", p)
	}

	h.cancel()
	<-h.done
	h.done <- nil
	pool.mu.Lock()
	closed := pool.closed
	pool.mu.Unlock()
	if !closed {
		t.Error("the pool was not closed when the daemon exited")
	}
	if _, err := os.Stat(filepath.Join(rt, control.SocketName)); err == nil {
		t.Error("control socket left behind")
	}
}

// Without a pool the daemon says so.
func TestWarmInitNone(t *testing.T) {
	rt := filepath.Join(shortTemp(t), "rt")
	startDaemon(t, rt, time.Minute)
	sock, _, reason, err := control.TakeInit(rt, "match")
	if err != nil || sock >= 0 || reason == "" {
		t.Fatalf("TakeInit without a pool: sock %d reason %q err %v", sock, reason, err)
	}
}

// samePlace accepts a peer that is where the daemon is (here: this very
// process, checked over a socket pair) and refuses one whose places, as
// checkPeer read them, differ, or that checkPeer did not read.
func TestSamePlace(t *testing.T) {
	here, err := selfNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	f := os.NewFile(uintptr(fds[0]), "peer")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := checkPeer(c, here)
	if err != nil {
		t.Fatalf("checkPeer of this process: %v", err)
	}
	if p.pid != os.Getpid() {
		t.Errorf("peer pid %d, want %d", p.pid, os.Getpid())
	}
	if err := samePlace(p, here); err != nil {
		t.Errorf("this process is not where it is: %v", err)
	}
	elsewhere := maps.Clone(here)
	elsewhere["root"] = nsID{}
	if err := samePlace(p, elsewhere); err == nil {
		t.Error("a peer with another root passed")
	}
	elsewhere = maps.Clone(here)
	elsewhere["ns/uts"] = nsID{}
	if err := samePlace(p, elsewhere); err == nil {
		t.Error("a peer in another UTS namespace passed")
	}
	if err := samePlace(peer{pid: p.pid, start: p.start}, here); err == nil {
		t.Error("a peer whose places were not read passed")
	}
	if err := samePlace(peer{}, here); err == nil {
		t.Error("a peer without a pid passed")
	}
}

// WaitStopped returns once the daemon's lock is released, not before,
// and gives up after its timeout.
func TestWaitStopped(t *testing.T) {
	dir := t.TempDir()
	if !WaitStopped(dir, 0) {
		t.Fatal("no lock file: nothing runs, yet WaitStopped waited")
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if WaitStopped(dir, 50*time.Millisecond) {
		t.Fatal("WaitStopped returned while the lock was held")
	}
	done := make(chan bool, 1)
	go func() { done <- WaitStopped(dir, 5*time.Second) }()
	select {
	case <-done:
		t.Fatal("WaitStopped returned while the lock was held")
	case <-time.After(100 * time.Millisecond):
	}
	unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("WaitStopped gave up after the lock was released")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WaitStopped did not notice the lock released")
	}
}

// A daemon started while the last one is still exiting (its control socket
// gone, its lock not yet released) waits for the lock; one started while a
// daemon runs (its socket there) is refused at once.
func TestTakeLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, lockName)
	sock := filepath.Join(dir, control.SocketName)
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	exiting := open()
	if err := unix.Flock(int(exiting.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(100 * time.Millisecond); exiting.Close() }()
	next := open()
	if err := takeLock(next, sock); err != nil {
		t.Fatalf("after an exiting daemon: %v", err)
	}
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := takeLock(open(), sock); err != ErrRunning {
		t.Fatalf("with a daemon running: %v, want ErrRunning", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing took %v", d)
	}
}

// An open can ask for a warm init: the session and the init's descriptors
// (and the init's context, for the client to compare) come in one answer,
// the daemon keeps no copy of them, and the lease goes on as usual after
// it. A client of another binary (exe) gets none.
func TestOpenWithInit(t *testing.T) {
	rt := filepath.Join(shortTemp(t), "rt")
	startDaemonWith(t, Options{Dir: rt, Idle: time.Minute, Inits: &fakeInits{}})
	dir := t.TempDir()
	writePolicy(t, dir, "allow x.example\n")
	for _, tc := range []struct {
		context, exe string
		want         bool
	}{{"match", "", true}, {"other", "", false}, {"", "match-exe", true}, {"", "other-exe", false}} {
		c, err := control.Dial(rt)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Call(control.Request{Op: control.OpOpen, Spec: &control.Spec{Dir: dir}, Init: true, Context: tc.context, Exe: tc.exe})
		if err != nil || resp.Session == nil {
			t.Fatalf("open with init (%s): %+v %v", tc.context, resp, err)
		}
		sock, pidfd, reason, err := c.Init(resp)
		if err != nil {
			t.Fatalf("init with the session (%s): %v", tc.context, err)
		}
		if got := sock >= 0; got != tc.want {
			t.Fatalf("init with the session (%s): sock %d, reason %q", tc.context, sock, reason)
		}
		if tc.want {
			if resp.InitContext != "match" {
				t.Fatalf("the init's context did not come with it: %q", resp.InitContext)
			}
			// Closing the client's copy of the write end must end the
			// pipe: the daemon holds none.
			unix.Close(pidfd)
			fds := []unix.PollFd{{Fd: int32(sock), Events: unix.POLLIN}}
			if n, err := unix.Poll(fds, 2000); n != 1 || err != nil || fds[0].Revents&unix.POLLHUP == 0 {
				t.Fatalf("the daemon kept a copy of the handed descriptors (poll %d %v %#x)", n, err, fds[0].Revents)
			}
			unix.Close(sock)
		} else if reason != "context differs" {
			t.Fatalf("reason: %q", reason)
		}
		// The lease still works: half-closing it brings the final counts.
		c.CloseWrite()
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
		if c.Final() == nil || c.Final().ID != resp.Session.ID {
			t.Fatalf("final counts after an open with init: %+v", c.Final())
		}
		c.Close()
	}
}

// checkPassedPipe checks that the two descriptors a client got are the
// fake pool's pipe ends (what is written to one comes out of the other),
// and closes them.
func checkPassedPipe(t *testing.T, sock, pidfd int) {
	t.Helper()
	defer unix.Close(sock)
	defer unix.Close(pidfd)
	if _, err := unix.Write(pidfd, []byte("x")); err != nil {
		t.Fatalf("write the passed pipe: %v", err)
	}
	buf := make([]byte, 1)
	if n, err := unix.Read(sock, buf); n != 1 || err != nil || buf[0] != 'x' {
		t.Fatalf("read the passed pipe: %d %v %q", n, err, buf)
	}
}
