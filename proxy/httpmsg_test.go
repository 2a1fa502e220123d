package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// readRequestWhole reads a request's head and body as the proxy does.
func readRequestWhole(raw string) (*requestHead, string, error) {
	br := bufio.NewReader(strings.NewReader(raw))
	req, err := readRequestHead(br)
	if err != nil {
		return nil, "", err
	}
	f, n, err := requestFraming(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(bodyReader(br, f, n))
	return req, string(b), err
}

// FuzzRequestFraming compares the proxy's reading of a request with
// net/http's: when both accept it, they must agree on the method, the
// target and where the body ends. A disagreement between two HTTP
// readers on a message's end is request smuggling.
func FuzzRequestFraming(f *testing.F) {
	for _, s := range []string{
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
		"POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
		"GET http://a/ HTTP/1.0\nHost: a\n\n",
		"POST http://a/ HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n00\r\n0\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		mine, myBody, myErr := readRequestWhole(raw)
		theirs, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if myErr != nil || err != nil {
			return
		}
		b, err := io.ReadAll(theirs.Body)
		if err != nil {
			return
		}
		if mine.method != theirs.Method || mine.target != theirs.RequestURI {
			t.Fatalf("request line: %s %s, net/http %s %s", mine.method, mine.target, theirs.Method, theirs.RequestURI)
		}
		if myBody != string(b) {
			t.Fatalf("body %q, net/http %q", myBody, b)
		}
	})
}

func TestChunkedRoundTrip(t *testing.T) {
	var b strings.Builder
	cw := chunkedWriter{&b}
	io.WriteString(cw, "hello ")
	io.WriteString(cw, "")
	io.WriteString(cw, "world")
	tr := header{"X-Sum": {"42"}}
	cw.close(tr)
	cr := &chunkedReader{br: bufio.NewReader(strings.NewReader(b.String() + "NEXT"))}
	got, err := io.ReadAll(cr)
	if err != nil || string(got) != "hello world" || cr.trailer.Get("X-Sum") != "42" {
		t.Fatalf("got %q %v trailer %v from %q", got, err, cr.trailer, b.String())
	}
	rest, _ := io.ReadAll(cr.br)
	if string(rest) != "NEXT" {
		t.Fatalf("read past the body's end: %q left", rest)
	}
}
