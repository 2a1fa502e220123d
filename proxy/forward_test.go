package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rawUpstream is a server that answers each request it reads with what
// answer returns for it (n counts the requests on the connection before
// it), written as is; it records every request. An empty answer closes
// the connection without answering; one ending in NUL closes it after.
type rawUpstream struct {
	port    int
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  []string
	accepts int
}

func newRawUpstream(t *testing.T, answer func(r *http.Request, body string, n int) string) *rawUpstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	u := &rawUpstream{port: l.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.accepts++
			u.mu.Unlock()
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					b, _ := io.ReadAll(r.Body)
					u.mu.Lock()
					u.reqs = append(u.reqs, r)
					u.bodies = append(u.bodies, string(b))
					u.mu.Unlock()
					out := answer(r, string(b), n)
					if out == "" {
						return
					}
					closeAfter := strings.HasSuffix(out, "\x00")
					if _, err := io.WriteString(c, strings.TrimSuffix(out, "\x00")); err != nil {
						return
					}
					if closeAfter || strings.Contains(out, "Connection: close") {
						return
					}
				}
			}()
		}
	}()
	return u
}

func (u *rawUpstream) last() (*http.Request, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil, ""
	}
	return u.reqs[len(u.reqs)-1], u.bodies[len(u.bodies)-1]
}

func (u *rawUpstream) connections() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.accepts
}

// dialProxy opens a connection to the session's HTTP proxy.
func dialProxy(t *testing.T, ts *testSession) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", ts.httpSock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	resp.Body.Close()
	return resp, string(b)
}

func forwardSession(t *testing.T, port int) *testSession {
	p := strconv.Itoa(port)
	return newTestSession(t, mustRules(t, []string{"up.test:" + p}, nil, port), map[string][]string{"up.test": {"127.0.0.1"}})
}

// TestForwardBodies: request bodies reach the server whole, framed by
// length or by chunks, and one connection carries several requests, each
// forwarded over a kept upstream connection.
func TestForwardBodies(t *testing.T) {
	up := newRawUpstream(t, func(r *http.Request, body string, _ int) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)+3) + "\r\n\r\ngot" + body
	})
	ts := forwardSession(t, up.port)
	p := strconv.Itoa(up.port)
	c, br := dialProxy(t, ts)
	for i, req := range []struct{ raw, want string }{
		{"POST http://up.test:" + p + "/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "hello"},
		{"POST http://up.test:" + p + "/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n", "abcdefg"},
		{"GET http://up.test:" + p + "/c HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"PUT http://up.test:" + p + "/d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", ""},
	} {
		io.WriteString(c, req.raw)
		resp, body := readResp(t, br, "POST")
		if resp.StatusCode != 200 || body != "got"+req.want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, body, "got"+req.want)
		}
		r, got := up.last()
		if got != req.want || r.Host != "up.test:"+p {
			t.Fatalf("request %d: the server got %q with Host %q", i, got, r.Host)
		}
	}
	if n := up.connections(); n != 1 {
		t.Errorf("the server saw %d connections for 4 requests; want 1 (kept alive)", n)
	}
}

// TestForwardResponseFraming: each way a response can end reaches the
// client in a form it can read, and the connections are reused only when
// both messages ended cleanly.
func TestForwardResponseFraming(t *testing.T) {
	up := newRawUpstream(t, func(r *http.Request, _ string, _ int) string {
		switch r.URL.Path {
		case "/close":
			return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
		case "/chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
		case "/head":
			return "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
		case "/204":
			return "HTTP/1.1 204 No Content\r\n\r\n"
		case "/interim":
			return "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		case "/badlen":
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"
		case "/gzipte":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
		case "/te10":
			// HTTP/1.0 has no transfer codings: the body ends with the
			// connection, chunk lines and all.
			return "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n5\r\nhello\r\n0\r\n\r\n\x00"
		case "/garbage":
			return "SSH-2.0-OpenSSH\r\n\r\n"
		}
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	})
	ts := forwardSession(t, up.port)
	p := strconv.Itoa(up.port)
	get := func(method, path, proto string) (*http.Response, string) {
		c, br := dialProxy(t, ts)
		io.WriteString(c, method+" http://up.test:"+p+path+" "+proto+"\r\nHost: x\r\n\r\n")
		return readResp(t, br, method)
	}
	resp, body := get("GET", "/close", "HTTP/1.1")
	if body != "until the end" || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("close-delimited to HTTP/1.1: %q %v, want the body chunked", body, resp.TransferEncoding)
	}
	resp, body = get("GET", "/close", "HTTP/1.0")
	if body != "until the end" || !resp.Close {
		t.Errorf("close-delimited to HTTP/1.0: %q close=%v", body, resp.Close)
	}
	resp, body = get("GET", "/chunked", "HTTP/1.0")
	if body != "hello" || !resp.Close || len(resp.TransferEncoding) != 0 {
		t.Errorf("chunked to HTTP/1.0: %q close=%v te=%v", body, resp.Close, resp.TransferEncoding)
	}
	resp, body = get("GET", "/te10", "HTTP/1.1")
	if body != "5\r\nhello\r\n0\r\n\r\n" || resp.ContentLength != -1 {
		t.Errorf("HTTP/1.0 response with a transfer coding: %q length %d, want the bytes until the close", body, resp.ContentLength)
	}
	resp, body = get("HEAD", "/head", "HTTP/1.1")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 1234 {
		t.Errorf("HEAD: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
	}
	if resp, body = get("GET", "/204", "HTTP/1.1"); resp.StatusCode != 204 || body != "" {
		t.Errorf("204: %d %q", resp.StatusCode, body)
	}
	if resp, body = get("GET", "/interim", "HTTP/1.1"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("after an interim response: %d %q", resp.StatusCode, body)
	}
	for _, path := range []string{"/badlen", "/gzipte", "/garbage"} {
		if resp, body = get("GET", path, "HTTP/1.1"); resp.StatusCode != 502 {
			t.Errorf("%s: %d %q, want 502", path, resp.StatusCode, body)
		}
	}
	// HEAD and 204 left their connections reusable: a kept-alive client
	// connection goes on after each.
	c, br := dialProxy(t, ts)
	for _, path := range []string{"/head", "/204", "/chunked", "/x"} {
		method := "GET"
		if path == "/head" {
			method = "HEAD"
		}
		io.WriteString(c, method+" http://up.test:"+p+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := readResp(t, br, method); resp.Close {
			t.Fatalf("%s closed the client's connection", path)
		}
	}
}

// TestForwardRequestErrors: heads and framings the proxy cannot forward
// safely are answered, and the connection closes.
func TestForwardRequestErrors(t *testing.T) {
	_, port := echoServer(t)
	ts := forwardSession(t, port)
	p := strconv.Itoa(port)
	target := "http://up.test:" + p + "/"
	for _, tt := range []struct {
		name, req string
		code      int
	}{
		{"obsolete line folding", "GET " + target + " HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 400},
		{"space before the colon", "GET " + target + " HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"control character in a value", "GET " + target + " HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400},
		{"conflicting lengths", "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"signed length", "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", 400},
		{"unknown transfer coding", "POST " + target + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		// net/http ignores the field in HTTP/1.0 and reads no body; the
		// chunks would be a second request to it (fuzzing found this).
		{"transfer coding in HTTP/1.0", "POST " + target + " HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n00\r\n0\r\n\r\n", 400},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
		{"header too large", "GET " + target + " HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n", 431},
		{"bad chunk size", "POST " + target + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ts.raw(t, tt.req)
			if tt.code == 0 {
				// The head was fine, the body not: the server may have
				// answered, but the client's connection must not go on.
				if strings.Count(got, "HTTP/1.1 ") > 1 {
					t.Errorf("got %q", got)
				}
				return
			}
			if statusOf(got) != tt.code {
				t.Errorf("got %q, want %d", got, tt.code)
			}
		})
	}
}

// TestForwardExpectContinue: a client that waits for 100 Continue gets it
// from the proxy, and its body reaches the server.
func TestForwardExpectContinue(t *testing.T) {
	up := newRawUpstream(t, func(r *http.Request, body string, _ int) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	})
	ts := forwardSession(t, up.port)
	c, br := dialProxy(t, ts)
	io.WriteString(c, "PUT http://up.test:"+strconv.Itoa(up.port)+"/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("before the body: %q %v, want 100 Continue", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "data")
	if resp, body := readResp(t, br, "PUT"); resp.StatusCode != 200 || body != "data" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if r, _ := up.last(); r.Header.Get("Expect") != "" {
		t.Errorf("Expect forwarded: the body was sent without waiting")
	}
}

// TestForwardEarlyAnswer: a server that answers before reading a large
// body (413) reaches the client at once, even while the client holds the
// rest of its body back; the client's connection then closes, since the
// rest of its body was not read.
func TestForwardEarlyAnswer(t *testing.T) {
	port := upstreamPort(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(413)
		io.WriteString(w, "too big")
	})
	ts := forwardSession(t, port)
	c, br := dialProxy(t, ts)
	io.WriteString(c, "POST http://up.test:"+strconv.Itoa(port)+"/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
	io.WriteString(c, strings.Repeat("x", 64<<10))
	resp, body := readResp(t, br, "POST")
	if resp.StatusCode != 413 || body != "too big" {
		t.Fatalf("got %d %q, want 413", resp.StatusCode, body)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	// Closed with the rest of the body unread, the connection may end in
	// a reset rather than an end of file.
	if _, err := br.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the answer: %v, want the connection closed (its body was not read)", err)
	}
}

// TestForwardIdleConnectionClosed: a kept upstream connection the server
// closed meanwhile is not used (a request with a body could not go
// again), and a request without a body that finds its kept connection
// closed under it goes again over a new one.
func TestForwardIdleConnectionClosed(t *testing.T) {
	closeIdle := true
	var mu sync.Mutex
	up := newRawUpstream(t, func(r *http.Request, _ string, n int) string {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case closeIdle:
			// Kept alive as far as the proxy knows, closed right after.
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\x00"
		case n > 0:
			// Closed as the next request arrives.
			return ""
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	ts := forwardSession(t, up.port)
	target := "http://up.test:" + strconv.Itoa(up.port) + "/"
	c, br := dialProxy(t, ts)
	for i := 0; i < 4; i++ {
		if i == 2 {
			mu.Lock()
			closeIdle = false
			mu.Unlock()
		}
		req := "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n"
		if i == 1 {
			req = "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
		}
		io.WriteString(c, req)
		if resp, body := readResp(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond) // the server's close arrives
	}
	// 1 and 2: a new connection each (the kept one was seen closed);
	// 3: the kept one, then a new one when it closed under the request.
	if n := up.connections(); n != 4 {
		t.Errorf("%d upstream connections for 4 requests, want 4", n)
	}
}

// TestForwardStreams: a response of unknown length reaches the client
// piece by piece, before the server has finished it (server-sent events).
func TestForwardStreams(t *testing.T) {
	next := make(chan struct{})
	port := upstreamPort(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "data: two\n\n")
	})
	ts := forwardSession(t, port)
	c, br := dialProxy(t, ts)
	io.WriteString(c, "GET http://up.test:"+strconv.Itoa(port)+"/ HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("data: one\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: one\n\n" {
		t.Fatalf("first event: %q %v", first, err)
	}
	close(next)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "data: two\n\n" {
		t.Fatalf("second event: %q", rest)
	}
}

// TestCloseEndsWaitingRequest: closing the session ends a forwarded
// request still waiting for its server, upstream connection included.
func TestCloseEndsWaitingRequest(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	upClosed := make(chan struct{})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c) // never answers; returns when the proxy closes
		close(upClosed)
	}()
	port := l.Addr().(*net.TCPAddr).Port
	ts := forwardSession(t, port)
	c, br := dialProxy(t, ts)
	io.WriteString(c, "GET http://up.test:"+strconv.Itoa(port)+"/ HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // the request reaches the server
	ts.Close()
	select {
	case <-upClosed:
	case <-time.After(3 * time.Second):
		t.Fatal("the upstream connection outlived the session")
	}
	// The client's connection ends too (a 502 may come first: the
	// upstream connection may be closed before it).
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if rest, err := io.ReadAll(br); err != nil || (len(rest) > 0 && statusOf(string(rest)) != 502) {
		t.Fatalf("client connection after Close: %q %v, want its end", rest, err)
	}
}

// hangingPort returns a loopback port whose listener never accepts and
// whose backlog is full: a connect to it hangs until it times out.
func hangingPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	port := sa.(*syscall.SockaddrInet4).Port
	// Fill the backlog: later handshakes are not answered.
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return port
}

// TestCloseEndsDial: closing the session ends a forwarded request whose
// upstream dial is still waiting, not only its client's connection.
func TestCloseEndsDial(t *testing.T) {
	port := hangingPort(t)
	ts := forwardSession(t, port)
	// Whether a goroutine is in the upstream dial: read from the stacks,
	// not from a count of goroutines, which others (a previous test's
	// connections ending) move under load.
	dialing := func() (bool, []byte) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		return bytes.Contains(buf, []byte("proxy.Decision.Dial")), buf
	}
	waitFor := func(want bool) []byte {
		var stacks []byte
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			var now bool
			if now, stacks = dialing(); now == want {
				return nil
			}
		}
		return stacks
	}
	c, br := dialProxy(t, ts)
	io.WriteString(c, "GET http://up.test:"+strconv.Itoa(port)+"/ HTTP/1.1\r\nHost: x\r\n\r\n")
	if stacks := waitFor(true); stacks != nil {
		t.Fatalf("no dial under way 2 s after the request\n%s", stacks)
	}
	ts.Close()
	io.ReadAll(br)
	if stacks := waitFor(false); stacks != nil {
		t.Fatalf("the dial goes on 2 s after Close\n%s", stacks)
	}
}
