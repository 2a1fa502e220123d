package proxy

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzHTTPProxy sends arbitrary bytes to a session's HTTP proxy. Both
// allowed.test and evil.test resolve to the same upstream server, which
// records the Host of every request it gets and every tunnel opened to it;
// whatever the input, evil.test must never reach it.
func FuzzHTTPProxy(f *testing.F) {
	var mu sync.Mutex
	var seen []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host)
		mu.Unlock()
		io.WriteString(w, "ok")
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(l)
	f.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	p := strconv.Itoa(port)
	ts := newTestSession(f, mustRules(f, []string{"allowed.test:" + p}, nil, port),
		map[string][]string{"allowed.test": {"127.0.0.1"}, "evil.test": {"127.0.0.1"}})

	for _, s := range []string{
		"GET http://allowed.test:" + p + "/ HTTP/1.1\r\nHost: evil.test:" + p + "\r\n\r\n",
		"GET http://evil.test:" + p + "/ HTTP/1.1\r\nHost: allowed.test:" + p + "\r\n\r\n",
		"GET http://allowed.test:" + p + "@evil.test:" + p + "/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET //evil.test:" + p + "/ HTTP/1.1\r\nHost: allowed.test:" + p + "\r\n\r\n",
		"POST http://allowed.test:" + p + "/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://evil.test:" + p + "/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT allowed.test:" + p + " HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: evil.test:" + p + "\r\n\r\n",
		"CONNECT evil.test:" + p + " HTTP/1.1\r\nHost: allowed.test:" + p + "\r\n\r\nGET / HTTP/1.1\r\nHost: evil.test\r\n\r\n",
		"GET http://ALLOWED.TEST.:" + p + "/ HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, req string) {
		mu.Lock()
		seen = seen[:0]
		mu.Unlock()
		c, err := net.Dial("unix", ts.httpSock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(150 * time.Millisecond))
		io.WriteString(c, req)
		io.Copy(io.Discard, c)
		mu.Lock()
		defer mu.Unlock()
		for _, h := range seen {
			// Through a CONNECT tunnel to allowed.test the client speaks
			// to the server directly and may send any Host: that is the
			// server's business. What must never happen is a tunnel or a
			// forwarded request decided for evil.test.
			if strings.Contains(strings.ToLower(h), "evil.test") && !tunnelledToAllowed(req) {
				t.Fatalf("request for %q reached the upstream from input %q", h, req)
			}
		}
	})
}

// tunnelledToAllowed reports whether req opens a CONNECT tunnel to the
// allowed name, after which the bytes are the client's own.
func tunnelledToAllowed(req string) bool {
	line, _, _ := strings.Cut(req, "\n")
	f := strings.Fields(line)
	return len(f) >= 2 && f[0] == "CONNECT" && strings.HasPrefix(strings.ToLower(f[1]), "allowed.test")
}
