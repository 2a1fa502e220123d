package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// keepAliveServer answers every request on a connection with a short
// 200 and never closes a connection itself; it tracks those open.
type keepAliveServer struct {
	port  int
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func newKeepAliveServer(t *testing.T) *keepAliveServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &keepAliveServer{port: l.Addr().(*net.TCPAddr).Port, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { l.Close(); k.closeAll() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			k.mu.Lock()
			k.conns[c] = true
			k.mu.Unlock()
			go func() {
				defer func() {
					c.Close()
					k.mu.Lock()
					delete(k.conns, c)
					k.mu.Unlock()
				}()
				br := bufio.NewReader(c)
				for {
					// Requests without a body: the head ends the request.
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if line == "\r\n" {
							break
						}
					}
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return k
}

func (k *keepAliveServer) open() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.conns)
}

func (k *keepAliveServer) closeAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for c := range k.conns {
		c.Close()
	}
}

// waitFor polls cond for up to 3 s.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestIdlePoolBounded: a client naming a new target with each request
// (every *.localhost name is one) over one connection leaves no more than
// maxIdle upstream connections open. Bounded only per target, each request
// left one, until the daemon ran out of descriptors.
func TestIdlePoolBounded(t *testing.T) {
	const n = 300
	up := newKeepAliveServer(t)
	ts := newTestSession(t, mustRules(t, nil, nil, up.port), nil)
	c, br := dialProxy(t, ts)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	for i := 0; i < n; i++ {
		fmt.Fprintf(c, "GET http://n%d.localhost:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", i, up.port)
		if resp, body := readResp(t, br, "GET"); resp.StatusCode != 200 || body != "ok\n" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if got := ts.pool.len(); got > maxIdle {
		t.Errorf("%d idle upstream connections kept after %d targets, want at most %d", got, n, maxIdle)
	}
	// The ones evicted are closed, not just forgotten.
	if !waitFor(func() bool { return up.open() <= maxIdle+1 }) {
		t.Errorf("%d upstream connections open after %d targets, want at most %d idle and the one in use", up.open(), n, maxIdle)
	}
	// Per target too: one target over many connections at once.
	target := "same.localhost:" + strconv.Itoa(up.port)
	var brs []*bufio.Reader
	for i := 0; i < 2*maxIdlePerTarget; i++ {
		c, br := dialProxy(t, ts)
		fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: x\r\n\r\n", target)
		brs = append(brs, br)
	}
	for _, br := range brs {
		if resp, _ := readResp(t, br, "GET"); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", target, resp.StatusCode)
		}
	}
	ts.pool.mu.Lock()
	same := 0
	for _, uc := range ts.pool.idle {
		if uc.target == target {
			same++
		}
	}
	ts.pool.mu.Unlock()
	if same > maxIdlePerTarget {
		t.Errorf("%d idle connections kept for %s, want at most %d", same, target, maxIdlePerTarget)
	}
}

// TestIdlePoolSweep: idle upstream connections the server closed are
// closed by the proxy too (they stayed in CLOSE_WAIT until the next request
// to the same target), and those idle too long are closed though nothing
// asks for their target again.
func TestIdlePoolSweep(t *testing.T) {
	up := newKeepAliveServer(t)
	ts := newTestSession(t, mustRules(t, nil, nil, up.port), nil)
	ts.pool.mu.Lock()
	ts.pool.sweepEvery = 20 * time.Millisecond
	ts.pool.mu.Unlock()
	fill := func(from int) {
		t.Helper()
		c, br := dialProxy(t, ts)
		for i := from; i < from+10; i++ {
			fmt.Fprintf(c, "GET http://n%d.localhost:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", i, up.port)
			if resp, _ := readResp(t, br, "GET"); resp.StatusCode != 200 {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
		c.Close()
		// The last goes back to the pool after its response.
		if !waitFor(func() bool { return ts.pool.len() == 10 }) {
			t.Fatalf("%d idle connections after 10 targets, want 10", ts.pool.len())
		}
	}
	fill(0)
	up.closeAll()
	if !waitFor(func() bool { return ts.pool.len() == 0 }) {
		t.Errorf("%d idle connections kept after the server closed them all", ts.pool.len())
	}
	ts.pool.mu.Lock()
	ts.pool.timeout = 100 * time.Millisecond
	ts.pool.mu.Unlock()
	fill(10)
	if !waitFor(func() bool { return ts.pool.len() == 0 && up.open() == 0 }) {
		t.Errorf("after the idle timeout: %d idle connections kept, %d open at the server", ts.pool.len(), up.open())
	}
}

// TestSharedBudget: sessions sharing a descriptor budget close the
// connections it cannot pay for at once, and take new ones again once
// some closed.
func TestSharedBudget(t *testing.T) {
	b := NewBudget(3 * FDsPerConn)
	r := mustRules(t, nil, nil)
	a := newTestSession(t, r, nil, func(c *Config) { c.Budget = b })
	o := newTestSession(t, r, nil, func(c *Config) { c.Budget = b })
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("unix", a.httpSock)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		defer c.Close()
	}
	if !waitFor(func() bool { return a.Active() == 3 }) {
		t.Fatalf("%d connections active, want 3", a.Active())
	}
	if got := b.Used(); got != 3*FDsPerConn {
		t.Fatalf("budget used %d, want %d (%d per connection)", got, 3*FDsPerConn, FDsPerConn)
	}
	for _, ts := range []*testSession{a, o} {
		c, err := net.Dial("unix", ts.httpSock)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("connection over the budget: read %v, want EOF (closed at once)", err)
		}
		c.Close()
	}
	held[0].Close()
	if !waitFor(func() bool { return b.Used() == 2*FDsPerConn }) {
		t.Fatalf("budget used %d after a close, want %d", b.Used(), 2*FDsPerConn)
	}
	if got := o.raw(t, "GET http://blocked.example/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); statusOf(got) != 403 {
		t.Errorf("the other session once the budget allows: got %q, want a 403", got)
	}
}
