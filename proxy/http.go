package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

type decisionKey struct{}

// httpHandler is the HTTP proxy: CONNECT tunnels (handled here to keep
// bytes a client sends right after the request, and to answer 403/502
// precisely) and absolute-URI requests, each decided and forwarded on its
// own by forward.
func (s *Session) httpHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			s.connect(w, r)
			return
		}
		// Only the absolute form is proxied: an origin-form or
		// network-path request ("GET //allowed.example/") has no target
		// of its own, and Host is never one.
		if !hasHTTPScheme(r.RequestURI) {
			httpText(w, http.StatusBadRequest, "fence: this is fence's proxy: send absolute-URI requests (GET http://host/...) or CONNECT host:port")
			return
		}
		s.forward(w, r)
	})
}

func hasHTTPScheme(uri string) bool {
	return len(uri) > 7 && strings.EqualFold(uri[:7], "http://")
}

func httpText(w http.ResponseWriter, code int, line string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Connection", "close")
	w.WriteHeader(code)
	io.WriteString(w, line+"\n")
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
func (s *Session) connect(w http.ResponseWriter, r *http.Request) {
	t, err := ParseHostPort(r.RequestURI)
	if err != nil {
		s.blocked("CONNECT", r.RequestURI, "", "", "bad request: "+err.Error(), "")
		httpText(w, http.StatusBadRequest, "fence: bad CONNECT target: "+Escape(err.Error()))
		return
	}
	d, err := s.decide(r.Context(), "CONNECT", t)
	if err != nil {
		httpText(w, http.StatusBadGateway, "fence: "+Escape(err.Error()))
		return
	}
	if d.Blocked {
		httpText(w, http.StatusForbidden, blockedBody("CONNECT", d))
		return
	}
	up, err := d.Dial(r.Context(), s.cfg.DialTimeout)
	if err != nil {
		httpText(w, http.StatusBadGateway, "fence: connect "+Escape(t.String())+": "+Escape(err.Error()))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		httpText(w, http.StatusInternalServerError, "fence: BUG: proxy connection cannot be hijacked")
		return
	}
	client, rw, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		client.Close()
		up.Close()
		return
	}
	// Bytes the client sent right after the request (a TLS ClientHello in
	// the same write) are already in the server's buffer.
	raw := rawConn(client)
	var early *strings.Reader
	if n := rw.Reader.Buffered(); n > 0 {
		buf, _ := rw.Reader.Peek(n)
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
	if s.tlsPort(t.Port) {
		raw.SetReadDeadline(time.Now().Add(clientHelloLimit))
		hello, sni, err := readClientHello(source())
		raw.SetReadDeadline(time.Time{})
		if why := s.checkSNI(t, sni, err); why != "" {
			s.blocked("CONNECT", t.String(), t.Name(), "built-in: TLS server name check", why, "")
			client.Close()
			up.Close()
			return
		}
		if _, err := up.Write(hello); err != nil {
			client.Close()
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
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := io.Copy(up, clientSrc)
		if err != nil {
			up.Close()
			client.Close()
			return
		}
		closeWrite(up)
	}()
	go func() {
		defer wg.Done()
		_, err := io.Copy(rawConn(client), up)
		if err != nil {
			up.Close()
			client.Close()
			return
		}
		closeWrite(client)
	}()
	wg.Wait()
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

// hopHeaders are removed from forwarded requests (RFC 9110 §7.6.1), with
// Upgrade: fence does not carry protocol upgrades on the plain-HTTP path
// (use CONNECT), so an upgraded connection can never outlive the request
// it was decided for.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings",
}

// forward decides an absolute-URI request on its URI and forwards it to
// exactly that host, with Host rewritten to match. Answers to refused or
// failed requests keep the client's connection open: each request on it is
// decided on its own.
func (s *Session) forward(w http.ResponseWriter, r *http.Request) {
	u := r.URL
	if u.Scheme != "http" || u.Host == "" {
		answer(w, http.StatusBadRequest, "fence: only http:// URIs are proxied here; use CONNECT for https")
		return
	}
	if u.User != nil {
		s.blocked("HTTP", "", "", "", "URI with userinfo refused", "")
		answer(w, http.StatusBadRequest, "fence: URIs with user information (user@host) are refused")
		return
	}
	port := 80
	if ps := u.Port(); ps != "" {
		p, err := parsePort(ps)
		if err != nil {
			answer(w, http.StatusBadRequest, "fence: "+Escape(err.Error()))
			return
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
		answer(w, http.StatusBadRequest, "fence: bad target: "+Escape(err.Error()))
		return
	}
	d, err := s.decide(r.Context(), "HTTP", t)
	if err != nil {
		answer(w, http.StatusBadGateway, "fence: "+Escape(err.Error()))
		return
	}
	if d.Blocked {
		w.Header().Set("X-Fence-Blocked", "1")
		answer(w, http.StatusForbidden, blockedBody("HTTP", d))
		return
	}
	out := r.Clone(context.WithValue(r.Context(), decisionKey{}, d))
	out.RequestURI = ""
	// "Connection: close" is the client's, hop by hop: the upstream
	// connection stays pooled for the next request (each one is decided
	// anyway).
	out.Close = false
	// The URI decided; Host follows it. A Host header naming anything else
	// is discarded.
	out.Host = ""
	out.URL.Host = t.String()
	if port == 80 {
		out.URL.Host = hostForURL(t)
	}
	removeHopHeaders(out.Header)
	resp, err := s.tr.RoundTrip(out)
	if err != nil {
		answer(w, http.StatusBadGateway, "fence: "+Escape(t.String())+": "+Escape(err.Error()))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Never asked for (Upgrade is stripped); an upgraded connection
		// would outlive the request it was decided for.
		answer(w, http.StatusBadGateway, "fence: "+Escape(t.String())+": unrequested protocol switch refused")
		return
	}
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	removeHopHeaders(h)
	if len(resp.Trailer) > 0 {
		// Announced before the header is written, so that the server
		// sends the body chunked and the trailers after it.
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Set("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	var dst io.Writer = w
	if resp.ContentLength < 0 || strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") {
		// A stream of unknown length (server-sent events, long polls):
		// pass each piece on as it comes.
		dst = flushWriter{w}
	}
	io.Copy(dst, resp.Body)
	resp.Body.Close() // reads the trailers
	for k, vs := range resp.Trailer {
		h[k] = vs
	}
}

// answer writes a short plain-text answer of the proxy itself.
func answer(w http.ResponseWriter, code int, line string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	io.WriteString(w, line+"\n")
}

// removeHopHeaders removes the hop-by-hop headers (RFC 9110 §7.6.1): those
// the Connection header names and hopHeaders.
func removeHopHeaders(h http.Header) {
	for _, c := range h.Values("Connection") {
		for _, f := range strings.Split(c, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// flushWriter flushes after every write.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	http.NewResponseController(f.w).Flush()
	return n, err
}

func hostForURL(t Target) string {
	if t.IP.IsValid() && t.IP.Is6() {
		return "[" + t.IP.String() + "]"
	}
	return t.Name()
}

// dialDecided is the transport's dialer: it dials only what the request's
// decision allowed, whatever address the transport asks for.
func (s *Session) dialDecided(ctx context.Context, network, addr string) (net.Conn, error) {
	d, ok := ctx.Value(decisionKey{}).(Decision)
	if !ok {
		return nil, fmt.Errorf("dial %s: %w: no decision", addr, ErrBlocked)
	}
	host, ps, err := net.SplitHostPort(addr)
	if err != nil || ps != strconv.Itoa(d.Target.Port) || !strings.EqualFold(strings.Trim(host, "[]"), d.Target.Name()) {
		return nil, fmt.Errorf("dial %s: %w: decided for %s", addr, ErrBlocked, d.Target)
	}
	return d.Dial(ctx, s.cfg.DialTimeout)
}
