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

// readResponseWhole reads a response to method as the proxy does: its
// head, its body, and what is left on the connection after it.
func readResponseWhole(raw, method string) (*responseHead, framing, string, string, error) {
	br := bufio.NewReader(strings.NewReader(raw))
	resp, err := readResponseHead(br)
	if err != nil {
		return nil, 0, "", "", err
	}
	f, n, err := responseFraming(method, resp)
	if err != nil {
		return nil, 0, "", "", err
	}
	b, err := io.ReadAll(bodyReader(br, f, n))
	rest, _ := io.ReadAll(br)
	return resp, f, string(b), string(rest), err
}

// FuzzResponseFraming is FuzzRequestFraming for responses, compared with
// net/http's client: when both accept one, they must agree on the status,
// the body, and where the next response on the connection would begin (a
// disagreement there lets an upstream smuggle a response into another
// request's answer). One difference is deliberate: an HTTP/1.0 response
// with Transfer-Encoding has faulty framing (RFC 9112 §6.1), which the
// proxy reads until the connection closes, whatever its Content-Length.
func FuzzResponseFraming(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nNEXT",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nNEXT",
		"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 304 Not Modified\r\n\r\nNEXT",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nab\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nabNEXT",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		mine, fr, myBody, myRest, myErr := readResponseWhole(raw, method)
		if myErr != nil {
			return
		}
		br := bufio.NewReader(strings.NewReader(raw))
		theirs, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return
		}
		b, err := io.ReadAll(theirs.Body)
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(br)
		if mine.code != theirs.StatusCode {
			t.Fatalf("status %d, net/http %d", mine.code, theirs.StatusCode)
		}
		if mine.minor == 0 && len(theirs.TransferEncoding) == 0 && fr == closeBody && len(mine.h["Transfer-Encoding"]) > 0 {
			return // the faulty framing above: read until the close
		}
		if myBody != string(b) || myRest != string(rest) {
			t.Fatalf("body %q then %q, net/http %q then %q", myBody, myRest, b, rest)
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
