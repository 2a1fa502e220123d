package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
)

func benchSink(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func benchPump(b *testing.B, c net.Conn) {
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDirectLoopback is the baseline for BenchmarkConnectRelay: the
// same bytes to the same sink, without the proxy.
func BenchmarkDirectLoopback(b *testing.B) {
	port := benchSink(b)
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchPump(b, c)
}

// BenchmarkConnectRelay sends bulk data through a CONNECT tunnel of a
// session served on a unix socket, in this process.
func BenchmarkConnectRelay(b *testing.B) {
	port := benchSink(b)
	ts := newTestSession(b, mustRules(b, nil, nil, port), nil)
	c, err := net.Dial("unix", ts.httpSock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
	if resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
		b.Fatal(resp, err)
	}
	benchPump(b, c)
}

// BenchmarkDecide measures one decision on a name and an address.
func BenchmarkDecide(b *testing.B) {
	r := mustRules(b, []string{"registry.npmjs.org", "*.github.com", "github.com:22", "pypi.org", "files.pythonhosted.org"}, []string{"telemetry.example"})
	res := &fakeResolver{m: map[string][]string{"api.github.com": {"140.82.112.6"}}}
	tg, _ := ParseTarget("api.github.com", 443)
	ctx := b.Context()
	for b.Loop() {
		if d, err := Decide(ctx, r, res, tg); err != nil || d.Blocked {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkProxyRequest is one absolute-URI GET on a fresh client
// connection through a session; compare BenchmarkDirectRequest.
func BenchmarkProxyRequest(b *testing.B) {
	srv := benchWeb(b)
	ts := newTestSession(b, mustRules(b, nil, nil, srv), nil)
	benchRequests(b, func() (net.Conn, error) { return net.Dial("unix", ts.httpSock) }, srv)
}

// BenchmarkDirectRequest is BenchmarkProxyRequest without the proxy.
func BenchmarkDirectRequest(b *testing.B) {
	srv := benchWeb(b)
	benchRequests(b, func() (net.Conn, error) { return net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", srv)) }, srv)
}

func benchWeb(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "0123456789abcdef") })}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func benchRequests(b *testing.B, dial func() (net.Conn, error), port int) {
	for b.Loop() {
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(c, "GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", port)
		io.Copy(io.Discard, c)
		c.Close()
	}
}
