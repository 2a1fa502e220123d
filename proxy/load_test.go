package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestLoadConnectTunnels holds 1000 CONNECT tunnels open at once through
// one session, checks every one carries its bytes, and checks that once
// they close the session's connections, goroutines and descriptors are
// back where they started.
func TestLoadConnectTunnels(t *testing.T) {
	const n = 1000
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	ts := newTestSession(t, mustRules(t, nil, nil, port), nil)
	// Warm up (first-use allocations, pools), then take the baseline.
	func() {
		c, _ := net.Dial("unix", ts.httpSock)
		fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
		http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
		c.Close()
	}()
	time.Sleep(100 * time.Millisecond)
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	start := time.Now()
	var wg, established sync.WaitGroup
	release := make(chan struct{})
	errs := make(chan error, n)
	wg.Add(n)
	established.Add(n)
	for i := 0; i < n; i++ {
		go func(i int) {
			defer wg.Done()
			ok := false
			defer func() {
				if !ok {
					established.Done()
				}
			}()
			c, err := net.Dial("unix", ts.httpSock)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", port)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
			if err != nil || resp.StatusCode != 200 {
				errs <- fmt.Errorf("tunnel %d: %v %v", i, resp, err)
				return
			}
			msg := fmt.Sprintf("tunnel %d says hello\n", i)
			io.WriteString(c, msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
				errs <- fmt.Errorf("tunnel %d: echo %q %v", i, got, err)
				return
			}
			ok = true
			established.Done()
			<-release
		}(i)
	}
	established.Wait()
	held := ts.Active()
	elapsed := time.Since(start)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if held != n {
		t.Errorf("session held %d connections at the peak, want %d", held, n)
	}
	t.Logf("%d tunnels established and echoed in %v, all closed after %v", n, elapsed, time.Since(start))

	deadline := time.Now().Add(10 * time.Second)
	for {
		// Splice pipes are pooled by the runtime and closed when a GC
		// drops them from the pool: not a leak, but they count as fds.
		runtime.GC()
		g, fd := runtime.NumGoroutine(), openFDs(t)
		if ts.Active() == 0 && g <= baseG+5 && fd <= baseFD+5 {
			t.Logf("after: goroutines %d (baseline %d), fds %d (baseline %d)", g, baseG, fd, baseFD)
			break
		}
		if testing.Verbose() {
			t.Logf("waiting: active %d goroutines %d fds %d", ts.Active(), g, fd)
		}
		if time.Now().After(deadline) {
			t.Fatalf("leak after closing: active %d, goroutines %d (baseline %d), fds %d (baseline %d)", ts.Active(), g, baseG, fd, baseFD)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConnectionLimit checks that a session over its limit sheds new
// connections instead of growing without bound (P-18).
func TestConnectionLimit(t *testing.T) {
	r := mustRules(t, nil, nil)
	ts := newTestSession(t, r, nil, func(c *Config) { c.MaxConns = 5 })
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 5; i++ {
		c, err := net.Dial("unix", ts.httpSock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(2 * time.Second)
	for ts.Active() < 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c, err := net.Dial("unix", ts.httpSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection over the limit: read %v, want EOF (closed at once)", err)
	}
}
