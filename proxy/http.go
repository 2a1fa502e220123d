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

	"github.com/elazarl/goproxy"
)

type decisionKey struct{}

// httpHandler is the HTTP proxy: CONNECT is handled here (to keep bytes a
// client sends right after the request, and to answer 403/502 precisely);
// absolute-URI requests go through goproxy with a request handler that
// decides and forwards each request itself.
func (s *Session) httpHandler() http.Handler {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = discardLog // Verbose is off; nothing of the sandbox's is logged
	gp.Verbose = false
	gp.Tr = s.tr
	gp.ConnectDial = nil
	gp.KeepAcceptEncoding = true
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpText(w, http.StatusBadRequest, "fence: this is fence's proxy: send absolute-URI requests (GET http://host/...) or CONNECT host:port")
	})
	gp.OnRequest().DoFunc(s.forward)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			s.connect(w, r)
			return
		}
		// Only the absolute form reaches goproxy: an origin-form or
		// network-path request ("GET //allowed.example/") has no target
		// of its own, and Host is never one.
		if !hasHTTPScheme(r.RequestURI) {
			gp.NonproxyHandler.ServeHTTP(w, r)
			return
		}
		gp.ServeHTTP(w, r)
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
// exactly that host, with Host rewritten to match.
func (s *Session) forward(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	u := r.URL
	if u.Scheme != "http" || u.Host == "" {
		return r, goproxy.NewResponse(r, "text/plain", http.StatusBadRequest, "fence: only http:// URIs are proxied here; use CONNECT for https\n")
	}
	if u.User != nil {
		s.blocked("HTTP", "", "", "", "URI with userinfo refused", "")
		return r, goproxy.NewResponse(r, "text/plain", http.StatusBadRequest, "fence: URIs with user information (user@host) are refused\n")
	}
	port := 80
	if ps := u.Port(); ps != "" {
		p, err := parsePort(ps)
		if err != nil {
			return r, goproxy.NewResponse(r, "text/plain", http.StatusBadRequest, "fence: "+Escape(err.Error())+"\n")
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
		return r, goproxy.NewResponse(r, "text/plain", http.StatusBadRequest, "fence: bad target: "+Escape(err.Error())+"\n")
	}
	d, err := s.decide(r.Context(), "HTTP", t)
	if err != nil {
		return r, goproxy.NewResponse(r, "text/plain", http.StatusBadGateway, "fence: "+Escape(err.Error())+"\n")
	}
	if d.Blocked {
		resp := goproxy.NewResponse(r, "text/plain", http.StatusForbidden, blockedBody("HTTP", d)+"\n")
		resp.Header.Set("X-Fence-Blocked", "1")
		return r, resp
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
	if c := r.Header.Get("Connection"); c != "" {
		for _, f := range strings.Split(c, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out.Header.Del(f)
			}
		}
	}
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	resp, err := s.tr.RoundTrip(out)
	if err != nil {
		return r, goproxy.NewResponse(r, "text/plain", http.StatusBadGateway, "fence: "+Escape(t.String())+": "+Escape(err.Error())+"\n")
	}
	return r, resp
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
