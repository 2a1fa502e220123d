package proxy

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a [Session].
type Config struct {
	ID      string // session id, copied into events
	Project string // project root, copied into events
	Rules   Rules
	// Pending says the rules are not known yet: requests wait until the
	// first [Session.SetRules] (or [Session.Close]) instead of being
	// decided on Rules. The daemon answers a client before it has loaded
	// the session's policy, which is then off the sandbox's start-up path.
	Pending bool
	// NeedRules, for a Pending session, is called (once) when the first
	// request waits for the rules: the daemon may put off loading the
	// policy until then.
	NeedRules func()
	// Resolver resolves allowed names; nil means [net.DefaultResolver].
	Resolver Resolver
	// Emit receives the session's events; it must not block for long.
	Emit func(Event)
	// MaxConns bounds the session's concurrent client connections (both
	// proxies together); 0 means 4096. Connections over the limit are
	// closed at once, so one session cannot starve the daemon.
	MaxConns int
	// Budget, if set, is the daemon's descriptors shared with the other
	// sessions; connections it cannot pay for are closed at once too.
	Budget *Budget
	// DialTimeout bounds each upstream connection attempt; 0 means 10s.
	DialTimeout time.Duration
	// Log receives diagnostics that are not events; nil discards them.
	Log *log.Logger
	// TLSPorts are the ports whose tunnels must start with a TLS
	// ClientHello naming an allowed host; nil means 443 only.
	TLSPorts []int
}

// Session serves the HTTP and SOCKS5 proxies of one sandbox. Its identity
// is the listeners it serves: nothing a client sends can name another
// session. Its rules can be replaced at any time with [Session.SetRules];
// each new request is decided on the rules current when it arrives.
type Session struct {
	cfg   Config
	rules atomic.Pointer[Rules]
	// known is closed once the rules are known (Config.Pending).
	known     chan struct{}
	knownOnce sync.Once
	needOnce  sync.Once    // Config.NeedRules
	pool      upstreamPool // idle connections of the HTTP proxy
	// ctx ends with the session: a request waiting for its decision or
	// its upstream's dial gives up then.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex // guards conns, listeners, closed
	conns     map[net.Conn]struct{}
	listeners []net.Listener
	closed    bool
	active    atomic.Int64
	// limitLogged is when a refused connection was last logged (unix ns).
	limitLogged atomic.Int64
}

// NewSession returns a session ready to serve listeners.
func NewSession(cfg Config) *Session {
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4096
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.TLSPorts == nil {
		cfg.TLSPorts = []int{443}
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	s := &Session{cfg: cfg, conns: map[net.Conn]struct{}{}, known: make(chan struct{})}
	s.pool.budget, s.pool.timeout, s.pool.sweepEvery = cfg.Budget, upstreamIdleTimeout, idleSweep
	s.ctx, s.cancel = context.WithCancel(context.Background())
	r := cfg.Rules
	s.rules.Store(&r)
	if !cfg.Pending {
		s.knownOnce.Do(func() { close(s.known) })
	}
	return s
}

func (s *Session) tlsPort(port int) bool {
	for _, p := range s.cfg.TLSPorts {
		if p == port {
			return true
		}
	}
	return false
}

// Rules returns the rules in force.
func (s *Session) Rules() Rules { return *s.rules.Load() }

// SetRules replaces the rules for every request decided from now on.
// Tunnels already open stay open. For a pending session, the first call
// lets the requests that wait for it be decided.
func (s *Session) SetRules(r Rules) {
	s.rules.Store(&r)
	s.knownOnce.Do(func() { close(s.known) })
}

// Active returns the number of client connections open now.
func (s *Session) Active() int { return int(s.active.Load()) }

// decide judges t on the current rules and reports a blocked decision as
// an event.
func (s *Session) decide(ctx context.Context, proto string, t Target) (Decision, error) {
	if s.cfg.NeedRules != nil {
		select {
		case <-s.known:
		default:
			s.needOnce.Do(s.cfg.NeedRules)
		}
	}
	select {
	case <-s.known:
	case <-ctx.Done():
		return Decision{}, ctx.Err()
	}
	d, err := Decide(ctx, s.rules.Load(), s.cfg.Resolver, t)
	if err == nil && d.Blocked {
		s.blocked(proto, t.String(), t.Name(), d.Verdict.Rule, d.Reason, d.Verdict.Fix)
	}
	return d, err
}

func (s *Session) blocked(proto, target, host, rule, why, fix string) {
	s.emit(Event{Kind: KindBlocked, Proto: proto, Target: target, Host: host, Rule: rule, Detail: why, Fix: fix})
}

func (s *Session) emit(e Event) {
	if s.cfg.Emit == nil {
		return
	}
	e.Time = time.Now()
	e.Session = s.cfg.ID
	e.Project = s.cfg.Project
	s.cfg.Emit(e)
}

// ServeHTTP serves the HTTP proxy (absolute-URI requests and CONNECT) on
// ln until ln is closed or the session is closed.
func (s *Session) ServeHTTP(ln net.Listener) error {
	return s.serve(ln, s.serveHTTPConn)
}

// ServeSOCKS serves the SOCKS5 proxy (CONNECT only) on ln until ln is
// closed or the session is closed.
func (s *Session) ServeSOCKS(ln net.Listener) error {
	return s.serve(ln, s.serveSOCKS)
}

// serve hands each connection accepted on ln to handle, in a goroutine of
// its own. It goes on through errors that pass (the daemon out of
// descriptors for a moment): the listener is the sandbox's only way out.
func (s *Session) serve(ln net.Listener, handle func(net.Conn)) error {
	ln, err := s.track(ln)
	if err != nil {
		return err
	}
	var backoff AcceptBackoff
	logf := func(format string, args ...any) {
		s.cfg.Log.Printf("session %s: "+format, append([]any{s.cfg.ID}, args...)...)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if backoff.Retry(err, logf) {
				continue
			}
			return err
		}
		backoff.Reset()
		go handle(c)
	}
}

// Close stops the session's listeners and closes every connection it
// carries, tunnels included.
func (s *Session) Close() error {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	// Requests still waiting for a pending session's rules are decided
	// on the rules it has: none, so they are refused.
	s.knownOnce.Do(func() { close(s.known) })
	lns := s.listeners
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, l := range lns {
		l.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	s.pool.close()
	return nil
}

// hold registers an upstream connection in use, so that Close ends it; it
// reports false once the session is closed.
func (s *Session) hold(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// release undoes hold.
func (s *Session) release(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// holdTunnel holds up, the upstream end of a tunnel, until it is closed;
// once the session is closed it closes up and reports false. A tunnel
// whose server never closes outlived its session otherwise, waiting to
// read, with its descriptors already given back to the budget (second red
// team round: they piled up across sessions).
func (s *Session) holdTunnel(up net.Conn) (net.Conn, bool) {
	if !s.hold(up) {
		up.Close()
		return nil, false
	}
	return &heldConn{Conn: up, s: s}, true
}

// heldConn is an upstream connection held by its session ([Session.hold])
// until it is closed. Its copies go to the connection underneath, so that
// the kernel can still splice them.
type heldConn struct {
	net.Conn
	s    *Session
	once sync.Once
}

func (c *heldConn) Close() error {
	c.once.Do(func() { c.s.release(c.Conn) })
	return c.Conn.Close()
}

// CloseWrite half-closes the connection underneath: a SOCKS relay passes
// a client's end of sending on only to a connection that has it.
func (c *heldConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *heldConn) Unwrap() net.Conn                    { return c.Conn }
func (c *heldConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }
func (c *heldConn) WriteTo(w io.Writer) (int64, error)  { return io.Copy(w, c.Conn) }

func (s *Session) track(ln net.Listener) (net.Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return nil, net.ErrClosed
	}
	s.listeners = append(s.listeners, ln)
	return &limitListener{Listener: ln, s: s}, nil
}

// limitListener counts and tracks the session's client connections and
// closes those over the limit at once.
type limitListener struct {
	net.Listener
	s *Session
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		s := l.s
		if s.active.Add(1) > int64(s.cfg.MaxConns) {
			s.active.Add(-1)
			c.Close()
			s.logLimit("session %s: connection limit %d reached; closing new connections", s.cfg.ID, s.cfg.MaxConns)
			continue
		}
		if !s.cfg.Budget.take(FDsPerConn) {
			s.active.Add(-1)
			c.Close()
			s.logLimit("session %s: the daemon's descriptors for connections are all in use (%d); closing new connections until some close (a higher open-file limit, ulimit -n, when the daemon starts gives it more)", s.cfg.ID, s.cfg.Budget.Used())
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.active.Add(-1)
			s.cfg.Budget.give(FDsPerConn)
			c.Close()
			return nil, net.ErrClosed
		}
		tc := &trackedConn{Conn: c, s: s}
		s.conns[tc] = struct{}{}
		s.mu.Unlock()
		return tc, nil
	}
}

// logLimit logs a refused connection, at most once every 10 s: a flood of
// connections must not become a flood of log lines.
func (s *Session) logLimit(format string, args ...any) {
	if now := time.Now().UnixNano(); now-s.limitLogged.Load() > int64(10*time.Second) {
		s.limitLogged.Store(now)
		s.cfg.Log.Printf(format, args...)
	}
}

type trackedConn struct {
	net.Conn
	s    *Session
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.active.Add(-1)
		c.s.cfg.Budget.give(FDsPerConn)
	})
	return err
}

// Unwrap gives the relay the underlying connection, so that the kernel can
// splice a tunnel's bytes without copying them through user space.
func (c *trackedConn) Unwrap() net.Conn { return c.Conn }
