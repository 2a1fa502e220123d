package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type testSession struct {
	*Session
	httpSock, socksSock string
	res                 *fakeResolver
	mu                  sync.Mutex
	events              []Event
}

func (ts *testSession) Events() []Event {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]Event(nil), ts.events...)
}

// newTestSession serves a session on two unix sockets in a temporary
// directory, with names resolved by a fake resolver.
func newTestSession(t testing.TB, rules *Rules, names map[string][]string, opts ...func(*Config)) *testSession {
	t.Helper()
	dir := t.TempDir()
	ts := &testSession{res: &fakeResolver{m: names}, httpSock: filepath.Join(dir, "http.sock"), socksSock: filepath.Join(dir, "socks.sock")}
	cfg := Config{ID: "test", Project: "/p", Rules: *rules, Resolver: ts.res, Emit: func(e Event) {
		ts.mu.Lock()
		ts.events = append(ts.events, e)
		ts.mu.Unlock()
	}}
	for _, o := range opts {
		o(&cfg)
	}
	ts.Session = NewSession(cfg)
	hl, err := net.Listen("unix", ts.httpSock)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := net.Listen("unix", ts.socksSock)
	if err != nil {
		t.Fatal(err)
	}
	go ts.ServeHTTP(hl)
	go ts.ServeSOCKS(sl)
	t.Cleanup(func() { ts.Close() })
	return ts
}

// raw sends req on a new connection to the HTTP proxy and returns what
// comes back until the connection closes or 2s pass.
func (ts *testSession) raw(t testing.TB, req string) string {
	t.Helper()
	c, err := net.Dial("unix", ts.httpSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, req)
	b, _ := io.ReadAll(c)
	return string(b)
}

func statusOf(resp string) int {
	f := strings.Fields(resp)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// upstreamPort serves h on a loopback port for the test's duration.
func upstreamPort(t testing.TB, h http.HandlerFunc) int {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// echoServer answers every request with its Host header and path.
func echoServer(t testing.TB) (*httptest.Server, int) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s path=%s upgrade=%q", r.Host, r.URL.Path, r.Header.Get("Upgrade"))
	}))
	t.Cleanup(srv.Close)
	_, ps, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(ps)
	return srv, port
}

func TestHTTPProxy(t *testing.T) {
	_, port := echoServer(t)
	p := strconv.Itoa(port)
	r := mustRules(t, []string{"allowed.test:" + p, "other.test:" + p}, []string{"denied.test"}, port)
	ts := newTestSession(t, r, map[string][]string{"allowed.test": {"127.0.0.1"}, "other.test": {"127.0.0.1"}, "evil.test": {"127.0.0.1"}})

	tests := []struct {
		name, req string
		code      int
		bodyHas   string
	}{
		{"absolute URI", "GET http://allowed.test:" + p + "/a HTTP/1.1\r\nHost: allowed.test:" + p + "\r\nConnection: close\r\n\r\n", 200, "host=allowed.test:" + p + " path=/a"},
		{"P-03 evil Host on allowed URI is rewritten", "GET http://allowed.test:" + p + "/b HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n", 200, "host=allowed.test:" + p},
		{"P-03 evil URI with allowed Host", "GET http://evil.test:" + p + "/ HTTP/1.1\r\nHost: allowed.test:" + p + "\r\nConnection: close\r\n\r\n", 403, "not in allowedDomains"},
		{"P-04 origin form", "GET / HTTP/1.1\r\nHost: allowed.test:" + p + "\r\nConnection: close\r\n\r\n", 400, ""},
		{"P-04 network-path form", "GET //allowed.test:" + p + "/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, ""},
		{"P-05 userinfo", "GET http://allowed.test:" + p + "@evil.test:" + p + "/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, ""},
		{"P-09 default ports only", "GET http://allowed.test:8080/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 403, ""},
		{"P-19 upgrade stripped", "GET http://allowed.test:" + p + "/u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 200, `upgrade=""`},
		{"denied", "GET http://denied.test/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 403, "deniedDomains"},
		{"https URI", "GET https://allowed.test:" + p + "/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, ""},
		{"CONNECT allowed with evil Host", "CONNECT allowed.test:" + p + " HTTP/1.1\r\nHost: evil.test:443\r\n\r\nGET /t HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 200, "host=h path=/t"},
		{"P-02 CONNECT evil with allowed Host", "CONNECT evil.test:" + p + " HTTP/1.1\r\nHost: allowed.test:" + p + "\r\n\r\n", 403, "fence: blocked CONNECT evil.test:" + p},
		{"P-09 CONNECT port", "CONNECT allowed.test:22 HTTP/1.1\r\nHost: x\r\n\r\n", 403, "port 22"},
		{"P-09 CONNECT port leading zero", "CONNECT allowed.test:0" + p + " HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"P-01 CONNECT IP literal of allowed name", "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n", 403, ""},
		{"P-08 metadata", "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 403, ""},
		{"P-07 mapped metadata", "GET http://[::ffff:169.254.169.254]/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 403, ""},
		{"mapped loopback on a local port says why", "GET http://[::ffff:7f00:1]:" + p + "/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 403, "IPv4-mapped"},
		{"CONNECT mapped loopback says why", "CONNECT [::ffff:127.0.0.1]:" + p + " HTTP/1.1\r\nHost: x\r\n\r\n", 403, "request 127.0.0.1:" + p + " instead"},
		{"bad escape in the host says so", "GET http://%6cocalhost:" + p + "/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, `invalid URL escape "%6c"`},
		{"P-12 smuggled request is decided on its own", "POST http://allowed.test:" + p + "/s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://evil.test:" + p + "/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "403 Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ts.raw(t, tt.req)
			if statusOf(got) != tt.code || !strings.Contains(got, tt.bodyHas) {
				t.Errorf("got %q, want status %d containing %q", got, tt.code, tt.bodyHas)
			}
			if strings.Contains(got, "host=evil") {
				t.Errorf("request reached the server as evil: %q", got)
			}
		})
	}
}

func TestHTTPProxyLoopbackForms(t *testing.T) {
	// N-18: every spelling of host loopback is refused through the proxy
	// when no allowLocalOutbound port covers it, even with a permissive
	// allow list.
	_, port := echoServer(t)
	p := strconv.Itoa(port)
	r := mustRules(t, []string{"*.nip.test:" + p, "localtest.me:" + p, "127.0.0.1:" + p, "[::1]:" + p, "localhost:" + p}, nil)
	ts := newTestSession(t, r, map[string][]string{"x.nip.test": {"127.0.0.1"}, "localtest.me": {"127.0.0.1"}, "v6.nip.test": {"::ffff:127.0.0.1"}})
	for _, h := range []string{"127.0.0.1", "localhost", "localhost.", "LOCALHOST", "0.0.0.0", "127.0.0.2", "[::1]", "[::ffff:127.0.0.1]", "2130706433", "0x7f000001", "127.1", "foo.localhost", "localtest.me", "x.nip.test", "v6.nip.test", "[::]", "[64:ff9b::7f00:1]"} {
		got := ts.raw(t, "GET http://"+h+":"+p+"/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if c := statusOf(got); c != 403 && c != 400 {
			t.Errorf("%s: got %q, want 403 or 400", h, got)
		}
		got = ts.raw(t, "CONNECT "+h+":"+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if c := statusOf(got); c != 403 && c != 400 {
			t.Errorf("CONNECT %s: got %q, want 403 or 400", h, got)
		}
	}
	// The same target becomes reachable when its port is listed.
	ts.SetRules(*mustRules(t, nil, nil, port))
	if got := ts.raw(t, "GET http://127.0.0.1:"+p+"/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); statusOf(got) != 200 {
		t.Errorf("with allowLocalOutbound: got %q", got)
	}
}

func TestUpstreamFailure(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	p := strconv.Itoa(port)
	ts := newTestSession(t, mustRules(t, []string{"gone.test:" + p}, nil, port), map[string][]string{"gone.test": {"127.0.0.1"}})
	if got := ts.raw(t, "CONNECT gone.test:"+p+" HTTP/1.1\r\n\r\n"); statusOf(got) != 502 {
		t.Errorf("CONNECT to closed port: %q, want 502", got)
	}
	if got := ts.raw(t, "GET http://gone.test:"+p+"/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); statusOf(got) != 502 {
		t.Errorf("GET to closed port: %q, want 502", got)
	}
	if got := ts.raw(t, "GET http://unknown.test:"+p+"/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); statusOf(got) != 403 {
		t.Errorf("GET to unlisted name: %q, want 403", got)
	}
}

// socks sends a SOCKS5 greeting and request and returns the reply code,
// and the connection positioned after the reply.
func socks(t testing.TB, sock string, cmd, atyp byte, addr []byte, port int) (byte, net.Conn) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	req := []byte{5, 1, 0, 5, cmd, 0, atyp}
	if atyp == 3 {
		req = append(req, byte(len(addr)))
	}
	req = append(req, addr...)
	req = append(req, byte(port>>8), byte(port))
	c.Write(req)
	br := bufio.NewReader(c)
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil || hdr[0] != 5 || hdr[1] != 0 {
		t.Fatalf("greeting: %v %v", hdr, err)
	}
	rep := make([]byte, 10)
	if _, err := io.ReadFull(br, rep[:4]); err != nil {
		return 0xff, c
	}
	n := 6
	switch rep[3] {
	case 4:
		n = 18
	}
	rest := make([]byte, n)
	io.ReadFull(br, rest)
	return rep[1], &bufConn{Conn: c, r: br}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func TestSOCKS(t *testing.T) {
	_, port := echoServer(t)
	p := strconv.Itoa(port)
	r := mustRules(t, []string{"allowed.test:" + p, "127.0.0.5:" + p}, []string{"denied.test"}, port)
	ts := newTestSession(t, r, map[string][]string{"allowed.test": {"127.0.0.1"}})

	code, c := socks(t, ts.socksSock, 1, 3, []byte("allowed.test"), port)
	if code != 0 {
		t.Fatalf("CONNECT allowed.test: reply %#x", code)
	}
	io.WriteString(c, "GET /s HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(c)
	if !strings.Contains(string(b), "path=/s") {
		t.Errorf("through SOCKS: %q", b)
	}
	c.Close()

	ts.res.count.Store(0)
	for _, tt := range []struct {
		name string
		cmd  byte
		atyp byte
		addr []byte
		port int
		want byte
	}{
		{"N-08 denied name", 1, 3, []byte("x.leak.attacker.example"), 80, 0x02},
		{"denied list", 1, 3, []byte("denied.test"), port, 0x02},
		{"P-14 IP of allowed name", 1, 1, []byte{127, 0, 0, 1}, 443, 0x02},
		{"P-14 IPv6", 1, 4, net.ParseIP("::1").To16(), port + 1, 0x02},
		{"P-15 UDP ASSOCIATE", 3, 3, []byte("allowed.test"), 0, 0x07},
		{"P-15 BIND", 2, 3, []byte("allowed.test"), port, 0x07},
		{"P-16 control bytes", 1, 3, []byte("\x1b]52;c;Y3VybCBldmlsfHNoCg==\x07"), 443, 0x02},
		{"port", 1, 3, []byte("allowed.test"), 22, 0x02},
		{"loopback literal on a local port", 1, 1, []byte{127, 0, 0, 1}, port, 0x00},
		{"loopback literal on another port", 1, 1, []byte{127, 0, 0, 1}, port + 1, 0x02},
		// The HTTP proxy refuses [::ffff:127.0.0.1]; SOCKS must agree.
		{"mapped loopback on a local port", 1, 4, net.ParseIP("::ffff:127.0.0.1").To16(), port, 0x02},
	} {
		code, c := socks(t, ts.socksSock, tt.cmd, tt.atyp, tt.addr, tt.port)
		c.Close()
		if code != tt.want {
			t.Errorf("%s: reply %#x, want %#x", tt.name, code, tt.want)
		}
	}
	if n := ts.res.count.Load(); n != 0 {
		t.Errorf("refused SOCKS requests caused %d DNS lookups, want 0", n)
	}
	var sawEscaped bool
	for _, e := range ts.Events() {
		if strings.Contains(e.Line(), "\x1b") {
			t.Errorf("event line carries a raw escape: %q", e.Line())
		}
		if strings.Contains(e.Line(), `\x1b]52`) {
			sawEscaped = true
		}
	}
	if !sawEscaped {
		t.Errorf("no escaped event for the control-byte name: %v", ts.Events())
	}
}

func TestSetRulesTightens(t *testing.T) {
	_, port := echoServer(t)
	p := strconv.Itoa(port)
	ts := newTestSession(t, mustRules(t, []string{"allowed.test:" + p}, nil, port), map[string][]string{"allowed.test": {"127.0.0.1"}})
	req := "GET http://allowed.test:" + p + "/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	if got := ts.raw(t, req); statusOf(got) != 200 {
		t.Fatalf("before: %q", got)
	}
	ts.SetRules(*mustRules(t, nil, nil, port))
	if got := ts.raw(t, req); statusOf(got) != 403 {
		t.Fatalf("after tightening: %q", got)
	}
	// A kept-alive connection is decided per request, not per connection.
	ts.SetRules(*mustRules(t, []string{"allowed.test:" + p}, nil, port))
	c, _ := net.Dial("unix", ts.httpSock)
	defer c.Close()
	br := bufio.NewReader(c)
	one := func() int {
		io.WriteString(c, "GET http://allowed.test:"+p+"/ HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if one() != 200 {
		t.Fatal("keep-alive first request not allowed")
	}
	ts.SetRules(*mustRules(t, nil, nil, port))
	if c := one(); c != 403 {
		t.Fatalf("keep-alive second request after tightening: %d", c)
	}
}

func TestCloseEndsTunnels(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(c, c)
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	ts := newTestSession(t, mustRules(t, nil, nil, port), nil)
	c, _ := net.Dial("unix", ts.httpSock)
	defer c.Close()
	fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	ts.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("tunnel still open after Close: %v", err)
	}
	_ = context.Background
}

// TestNoRedirectFollowing: the proxy hands a redirect to the client, whose
// next request is decided on its own (P-13).
func TestNoRedirectFollowing(t *testing.T) {
	var evilHits int
	var mu sync.Mutex
	port := upstreamPort(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, "evil.test") {
			mu.Lock()
			evilHits++
			mu.Unlock()
		}
		http.Redirect(w, r, "http://evil.test:"+strings.Split(r.Host, ":")[1]+"/", http.StatusFound)
	})
	p := strconv.Itoa(port)
	ts := newTestSession(t, mustRules(t, []string{"allowed.test:" + p}, nil, port), map[string][]string{"allowed.test": {"127.0.0.1"}, "evil.test": {"127.0.0.1"}})
	got := ts.raw(t, "GET http://allowed.test:"+p+"/r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if statusOf(got) != 302 || !strings.Contains(got, "Location: http://evil.test:"+p+"/") {
		t.Fatalf("redirect not passed through: %q", got)
	}
	if got := ts.raw(t, "GET http://evil.test:"+p+"/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); statusOf(got) != 403 {
		t.Fatalf("following the redirect: %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if evilHits != 0 {
		t.Fatalf("the proxy followed the redirect %d times", evilHits)
	}
}

// TestForwardedResponse: the upstream's answer reaches the client without
// its hop-by-hop headers, with its trailers, and an unrequested protocol
// switch is refused (an upgraded connection would outlive the request it
// was decided for).
func TestForwardedResponse(t *testing.T) {
	port := upstreamPort(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/switch" {
			c, bw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw bytes")
			bw.Flush()
			time.Sleep(200 * time.Millisecond)
			c.Close()
			return
		}
		h := w.Header()
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		h.Set("Keep-Alive", "timeout=1")
		h.Set("X-End", "ok")
		h.Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		h.Set("X-Sum", "42")
	})
	p := strconv.Itoa(port)
	ts := newTestSession(t, mustRules(t, []string{"allowed.test:" + p}, nil, port), map[string][]string{"allowed.test": {"127.0.0.1"}})
	c, err := net.Dial("unix", ts.httpSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET http://allowed.test:"+p+"/ HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "body" || resp.Header.Get("X-End") != "ok" {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop headers forwarded: %v", resp.Header)
	}
	if resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("trailer not forwarded: %v", resp.Trailer)
	}
	got := ts.raw(t, "GET http://allowed.test:"+p+"/switch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if statusOf(got) != 502 || strings.Contains(got, "raw bytes") {
		t.Errorf("unrequested 101: got %q, want 502", got)
	}
}
