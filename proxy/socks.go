package proxy

import (
	"context"
	"io"
	"log"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	socks5 "github.com/armon/go-socks5"
)

// socksHandshakeTimeout bounds the SOCKS greeting and request.
const socksHandshakeTimeout = 30 * time.Second

// serveSOCKS serves one SOCKS5 connection with go-socks5. go-socks5
// resolves a requested name before it consults its rule set, so the
// server gets a resolver that resolves nothing; the rule set decides (name
// first, and only an allowed name is resolved, by [Decide]) and the dialer
// dials only the addresses that decision allowed.
func (s *Session) serveSOCKS(c net.Conn) {
	c.SetDeadline(time.Now().Add(socksHandshakeTimeout))
	sc := &socksConn{Conn: c}
	srv, err := socks5.New(&socks5.Config{
		Resolver: noResolver{},
		Rules:    &socksRules{s: s, c: sc},
		Dial:     s.dialSOCKS,
		// go-socks5 logs every refused request with the requested name:
		// a sandbox could fill the daemon's log (on a tmpfs) at will.
		// Refusals are events, counted and bounded instead.
		Logger: discardLog,
	})
	if err != nil {
		c.Close()
		return
	}
	srv.ServeConn(sc)
}

// socksConn lets the rule set answer a refused command itself: after it
// has written its reply, the library's own (less precise) reply is dropped.
type socksConn struct {
	net.Conn
	muted atomic.Bool
}

func (c *socksConn) Write(p []byte) (int, error) {
	if c.muted.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *socksConn) CloseWrite() error {
	if cw, ok := rawConn(c.Conn).(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

var discardLog = log.New(io.Discard, "", 0)

type noResolver struct{}

func (noResolver) Resolve(ctx context.Context, name string) (context.Context, net.IP, error) {
	return ctx, nil, nil
}

type socksDecisionKey struct{}

type socksDecided struct {
	d   Decision
	err error
}

type socksRules struct {
	s *Session
	c *socksConn
}

// SOCKS5 reply codes (RFC 1928).
const (
	socksRuleFailure     = 0x02
	socksCmdNotSupported = 0x07
)

func (r *socksRules) Allow(ctx context.Context, req *socks5.Request) (context.Context, bool) {
	s := r.s
	dst := req.DestAddr
	if req.Command != socks5.ConnectCommand {
		s.blocked("SOCKS", dst.Address(), "", "built-in: SOCKS CONNECT only", "SOCKS BIND and UDP ASSOCIATE are not supported", "")
		r.c.Conn.Write([]byte{5, socksCmdNotSupported, 0, 1, 0, 0, 0, 0, 0, 0})
		r.c.muted.Store(true)
		return ctx, false
	}
	host := dst.FQDN
	if host == "" {
		// The request's own address type decides the form: an IPv6
		// request for ::ffff:127.0.0.1 is the mapped form, refused as the
		// HTTP proxy refuses [::ffff:127.0.0.1], not the 127.0.0.1 that
		// net.IP.String prints for it.
		ip, _ := netip.AddrFromSlice(dst.IP)
		host = ip.String()
		if ip.Is6() {
			host = "[" + host + "]"
		}
	}
	t, err := ParseTarget(host, dst.Port)
	if err != nil {
		s.blocked("SOCKS", host, "", "", "bad request: "+err.Error(), "")
		return ctx, false
	}
	d, err := s.decide(context.Background(), "SOCKS", t)
	if err == nil && d.Blocked {
		return ctx, false
	}
	r.c.SetDeadline(time.Time{})
	return context.WithValue(ctx, socksDecisionKey{}, socksDecided{d, err}), true
}

func (s *Session) dialSOCKS(ctx context.Context, network, addr string) (net.Conn, error) {
	v, ok := ctx.Value(socksDecisionKey{}).(socksDecided)
	if !ok {
		return nil, ErrBlocked
	}
	if v.err != nil {
		return nil, v.err
	}
	c, err := v.d.Dial(ctx, s.cfg.DialTimeout)
	if err != nil {
		return nil, err
	}
	c, held := s.holdTunnel(c)
	if !held {
		return nil, net.ErrClosed
	}
	if !s.tlsPort(v.d.Target.Port) || v.d.Verdict.Local {
		return c, nil
	}
	return &sniGuard{Conn: c, s: s, t: v.d.Target}, nil
}
