package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	// headerTimeout bounds the wait for a request's head once its first
	// byte came; idleTimeout the wait for the next request on a kept-alive
	// connection.
	headerTimeout = 30 * time.Second
	idleTimeout   = 120 * time.Second
	// drainLimit is how much of a refused request's body is read to keep
	// its connection for the next request; past it the connection closes.
	drainLimit = 256 << 10
)

// serveHTTPConn serves one client connection of the HTTP proxy: CONNECT
// tunnels (the connection becomes the tunnel) and absolute-URI requests,
// each decided and forwarded on its own, one after the other while the
// client keeps the connection alive.
func (s *Session) serveHTTPConn(c net.Conn) {
	defer c.Close()
	ctx := s.ctx
	br := bufio.NewReaderSize(c, 4<<10)
	for {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		if _, err := br.Peek(1); err != nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(headerTimeout))
		req, err := readRequestHead(br)
		if err != nil {
			switch {
			case errors.Is(err, errHeaderTooLarge):
				httpText(c, 431, "fence: request header too large")
			case errors.Is(err, os.ErrDeadlineExceeded):
				httpText(c, 408, "fence: timed out reading the request")
			case !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
				httpText(c, 400, "fence: bad request: "+Escape(err.Error()))
			}
			return
		}
		c.SetReadDeadline(time.Time{})
		if req.method == "CONNECT" {
			s.connect(ctx, c, br, req)
			return
		}
		// Only the absolute form is proxied: an origin-form or
		// network-path request ("GET //allowed.example/") has no target
		// of its own, and Host is never one.
		if !hasHTTPScheme(req.target) {
			httpText(c, 400, "fence: this is fence's proxy: send absolute-URI requests (GET http://host/...) or CONNECT host:port")
			return
		}
		if !s.forward(ctx, c, br, req) {
			return
		}
	}
}

func hasHTTPScheme(uri string) bool {
	return len(uri) > 7 && strings.EqualFold(uri[:7], "http://")
}

// httpText answers with a line of text and closes: what follows the
// request on the connection is not read.
func httpText(c net.Conn, code int, line string) {
	h := header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Connection", "close")
	writeAnswer(c, code, h, line)
}

// answer writes a short plain-text answer of the proxy itself; the
// connection may carry the next request.
func answer(c net.Conn, code int, h header, line string) error {
	if h == nil {
		h = header{}
	}
	h.Set("Content-Type", "text/plain")
	return writeAnswer(c, code, h, line)
}

func writeAnswer(c net.Conn, code int, h header, line string) error {
	body := line + "\n"
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if err := writeHead(c, "HTTP/1.1 "+strconv.Itoa(code)+" "+statusText(code), h); err != nil {
		return err
	}
	_, err := io.WriteString(c, body)
	return err
}

// blockedBody is the one-line answer to a blocked request: what, why, and
// the fix. It is printed by curl and friends on the user's terminal, so
// the target is escaped.
func blockedBody(proto string, d Decision) string {
	s := fmt.Sprintf("fence: blocked %s %s: %s", proto, Escape(d.Target.String()), Escape(d.Reason))
	if d.Verdict.Rule != "" {
		s += " [" + d.Verdict.Rule + "]"
	}
	if d.Verdict.Fix != "" {
		s += "; " + d.Verdict.Fix
	}
	return s
}

// connect handles CONNECT host:port. The decision is made on the
// request-target alone: the Host header is ignored.
func (s *Session) connect(ctx context.Context, client net.Conn, br *bufio.Reader, req *requestHead) {
	t, err := ParseHostPort(req.target)
	if err != nil {
		s.blocked("CONNECT", req.target, "", "", "bad request: "+err.Error(), "")
		httpText(client, 400, "fence: bad CONNECT target: "+Escape(err.Error()))
		return
	}
	d, err := s.decide(ctx, "CONNECT", t)
	if err != nil {
		httpText(client, 502, "fence: "+Escape(err.Error()))
		return
	}
	if d.Blocked {
		httpText(client, 403, blockedBody("CONNECT", d))
		return
	}
	up, err := d.Dial(ctx, s.cfg.DialTimeout)
	if err != nil {
		httpText(client, 502, "fence: connect "+Escape(t.String())+": "+Escape(err.Error()))
		return
	}
	up, ok := s.holdTunnel(up)
	if !ok {
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		up.Close()
		return
	}
	// Bytes the client sent right after the request (a TLS ClientHello in
	// the same write) are already in the reader's buffer.
	raw := rawConn(client)
	var early *strings.Reader
	if n := br.Buffered(); n > 0 {
		buf, _ := br.Peek(n)
		early = strings.NewReader(string(buf))
	}
	source := func() io.Reader {
		if early != nil && early.Len() > 0 {
			return io.MultiReader(early, raw)
		}
		// The raw connection, not the tracking wrapper: io.Copy can then
		// let the kernel splice the tunnel's bytes.
		return raw
	}
	if s.tlsPort(t.Port) && !d.Verdict.Local {
		raw.SetReadDeadline(time.Now().Add(clientHelloLimit))
		hello, sni, err := readClientHello(source())
		raw.SetReadDeadline(time.Time{})
		if why := s.checkSNI(t, sni, err); why != "" {
			s.blocked("CONNECT", t.String(), t.Name(), "built-in: TLS server name check", why, "")
			up.Close()
			return
		}
		if _, err := up.Write(hello); err != nil {
			up.Close()
			return
		}
	}
	relay(client, source(), up)
}

// relay copies between a client connection and an upstream connection
// until both directions are done, half-closing each side as its source
// ends, and then closes both.
func relay(client net.Conn, clientSrc io.Reader, up net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := io.Copy(up, clientSrc)
		if err != nil {
			up.Close()
			client.Close()
			return
		}
		closeWrite(up)
	}()
	_, err := io.Copy(rawConn(client), up)
	if err != nil {
		up.Close()
		client.Close()
	} else {
		closeWrite(client)
	}
	<-done
	up.Close()
	client.Close()
}

func rawConn(c net.Conn) net.Conn {
	if u, ok := c.(interface{ Unwrap() net.Conn }); ok {
		return u.Unwrap()
	}
	return c
}

func closeWrite(c net.Conn) {
	if cw, ok := rawConn(c).(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.Close()
	}
}

// forward decides an absolute-URI request on its URI and forwards it to
// exactly that host, with Host rewritten to match. Answers to refused or
// failed requests keep the client's connection open: each request on it
// is decided on its own. It reports whether the connection can carry the
// next request.
func (s *Session) forward(ctx context.Context, c net.Conn, br *bufio.Reader, req *requestHead) bool {
	f, n, err := requestFraming(req)
	if err != nil {
		code := 400
		if strings.Contains(err.Error(), "transfer coding") {
			code = 501
		}
		httpText(c, code, "fence: "+Escape(err.Error()))
		return false
	}
	body := bodyReader(br, f, n)
	keep := req.keepAlive()
	// refuse answers without forwarding. The client's body is read past
	// (up to drainLimit) so that the connection can carry its next
	// request; otherwise the connection closes after the answer.
	refuse := func(code int, h header, line string) bool {
		if h == nil {
			h = header{}
		}
		if keep {
			if _, err := io.CopyN(io.Discard, body, drainLimit+1); err == io.EOF {
				return answer(c, code, h, line) == nil
			}
		}
		h.Set("Connection", "close")
		answer(c, code, h, line)
		return false
	}
	u, err := url.ParseRequestURI(req.target)
	if err != nil {
		// Say what is wrong with it ("invalid URL escape "%6c"" for
		// http://%6cocalhost/), not that it is not http://.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return refuse(400, nil, "fence: bad request URI: "+Escape(err.Error()))
	}
	if !strings.EqualFold(u.Scheme, "http") || u.Host == "" {
		return refuse(400, nil, "fence: only http:// URIs are proxied here; use CONNECT for https")
	}
	if u.User != nil {
		s.blocked("HTTP", "", "", "", "URI with userinfo refused", "")
		return refuse(400, nil, "fence: URIs with user information (user@host) are refused")
	}
	port := 80
	if ps := u.Port(); ps != "" {
		p, err := parsePort(ps)
		if err != nil {
			return refuse(400, nil, "fence: "+Escape(err.Error()))
		}
		port = p
	}
	host := u.Hostname()
	if strings.Contains(u.Host, "[") {
		host = "[" + host + "]"
	}
	t, err := ParseTarget(host, port)
	if err != nil {
		s.blocked("HTTP", u.Host, "", "", "bad request: "+err.Error(), "")
		return refuse(400, nil, "fence: bad target: "+Escape(err.Error()))
	}
	d, err := s.decide(ctx, "HTTP", t)
	if err != nil {
		return refuse(502, nil, "fence: "+Escape(err.Error()))
	}
	if d.Blocked {
		h := header{}
		h.Set("X-Fence-Blocked", "1")
		return refuse(403, h, blockedBody("HTTP", d))
	}
	// The URI decided; Host follows it. A Host field naming anything else
	// is discarded.
	out := header{}
	for k, vs := range req.h {
		out[k] = vs
	}
	removeHopHeaders(out)
	out.Del("Content-Length")
	// The body goes to the server without waiting for it to ask.
	expect := hasToken(out, "Expect", "100-continue")
	out.Del("Expect")
	hostField := t.String()
	if port == 80 {
		hostField = hostForURL(t)
	}
	out.Set("Host", hostField)
	switch f {
	case lengthBody:
		out.Set("Content-Length", strconv.FormatInt(n, 10))
	case chunkBody:
		out.Set("Transfer-Encoding", "chunked")
	}
	if expect && f != noBody && req.minor >= 1 {
		if _, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			return false
		}
	}
	x := &exchange{s: s, ctx: ctx, client: c, req: req, body: &bodyTracker{r: body}, framing: f,
		head: req.method + " " + u.RequestURI() + " HTTP/1.1", fields: out, target: t, decision: d}
	return x.run() && keep
}

func hostForURL(t Target) string {
	if t.IP.IsValid() && t.IP.Is6() {
		return "[" + t.IP.String() + "]"
	}
	return t.Name()
}
