package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// maxIdlePerTarget bounds the idle upstream connections kept for one
	// target, maxIdle those a session keeps in all; upstreamIdleTimeout
	// is how long one is kept. The pool only spares plain-HTTP clients a
	// dial to the few servers they talk to at a time (a package mirror, a
	// registry): 32 covers a client's parallel downloads from a handful of
	// them, and past it the oldest goes, which costs at worst one dial.
	// Each kept connection is a descriptor of the daemon's, and the
	// targets are the sandbox's to choose (every *.localhost name is one):
	// bounded only per target, 20,000 names left 20,000 of them open and
	// the daemon out of descriptors.
	maxIdlePerTarget    = 8
	maxIdle             = 32
	upstreamIdleTimeout = 60 * time.Second
	// maxInterim bounds the interim (1xx) responses skipped before the
	// final one.
	maxInterim = 5
)

// idleSweep is how often a session's idle connections are checked: those
// past upstreamIdleTimeout and those the server closed are closed (a
// server's close left them in CLOSE_WAIT until the next request to the
// same target).
const idleSweep = 5 * time.Second

// upstreamConn is a connection to a server that can carry one request
// after the other.
type upstreamConn struct {
	net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	target string    // the decided target it was dialled for
	idle   time.Time // since when it waits in the pool
}

func newUpstreamConn(c net.Conn) *upstreamConn {
	return &upstreamConn{Conn: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}
}

// upstreamPool keeps a session's idle upstream connections, for the next
// request to the same decided target: each request is decided anyway,
// and a connection only ever goes back to the target it was dialled for.
type upstreamPool struct {
	// budget, if set, is charged one descriptor per idle connection.
	budget *Budget
	// timeout and sweepEvery are upstreamIdleTimeout and idleSweep but
	// in tests.
	timeout, sweepEvery time.Duration

	mu     sync.Mutex      // guards everything below
	idle   []*upstreamConn // oldest first
	sweep  *time.Timer     // running while idle is not empty
	closed bool
}

// get returns an idle connection to target that is still open, or nil.
func (p *upstreamPool) get(target string) *upstreamConn {
	for {
		p.mu.Lock()
		i := len(p.idle) - 1
		for i >= 0 && p.idle[i].target != target {
			i--
		}
		if i < 0 {
			p.mu.Unlock()
			return nil
		}
		uc := p.remove(i)
		timeout := p.timeout
		p.mu.Unlock()
		if time.Since(uc.idle) < timeout && stillOpen(uc.Conn) {
			return uc
		}
		uc.Close()
	}
}

// remove takes the i-th idle connection out of the pool; p.mu is held.
func (p *upstreamPool) remove(i int) *upstreamConn {
	uc := p.idle[i]
	p.idle = append(p.idle[:i], p.idle[i+1:]...)
	p.budget.give(1)
	return uc
}

// put keeps uc for the next request to target, or closes it. A full pool
// (for the target, or in all) makes room by closing its oldest.
func (p *upstreamPool) put(target string, uc *upstreamConn) {
	var drop []*upstreamConn
	defer func() {
		for _, c := range drop {
			c.Close()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !p.budget.take(1) {
		drop = append(drop, uc)
		return
	}
	n, oldest := 0, -1
	for i, c := range p.idle {
		if c.target == target {
			n++
			if oldest < 0 {
				oldest = i
			}
		}
	}
	if n >= maxIdlePerTarget {
		drop = append(drop, p.remove(oldest))
	} else if len(p.idle) >= maxIdle {
		drop = append(drop, p.remove(0))
	}
	uc.target, uc.idle = target, time.Now()
	p.idle = append(p.idle, uc)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.sweepEvery, p.sweepIdle)
	}
}

// sweepIdle closes the idle connections that expired or that the server
// closed, and comes back while any are left.
func (p *upstreamPool) sweepIdle() {
	var drop []*upstreamConn
	p.mu.Lock()
	for i := 0; i < len(p.idle); {
		if uc := p.idle[i]; time.Since(uc.idle) >= p.timeout || !stillOpen(uc.Conn) {
			drop = append(drop, p.remove(i))
			continue
		}
		i++
	}
	if len(p.idle) > 0 && !p.closed {
		p.sweep.Reset(p.sweepEvery)
	} else {
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, uc := range drop {
		uc.Close()
	}
}

// len returns the number of idle connections kept.
func (p *upstreamPool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// close closes every idle connection, and those put back later.
func (p *upstreamPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.budget.give(int64(len(idle)))
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, uc := range idle {
		uc.Close()
	}
}

// stillOpen reports whether an idle connection can carry a request: the
// server has neither closed it nor sent anything unasked.
func stillOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = err == syscall.EAGAIN
		return true
	})
	return open
}

// exchange forwards one decided request to its server and the response
// back to the client.
type exchange struct {
	s        *Session
	ctx      context.Context
	client   net.Conn
	req      *requestHead
	body     *bodyTracker // the client's request body
	framing  framing      // of body
	head     string       // the request line for the server
	fields   header       // the header fields for the server
	target   Target
	decision Decision
}

// run forwards the request and relays the response. It reports whether
// the client's connection can carry another request.
func (x *exchange) run() bool {
	key := x.target.String()
	for attempt := 0; ; attempt++ {
		uc := x.s.pool.get(key)
		reused := uc != nil
		if uc == nil {
			c, err := x.decision.Dial(x.ctx, x.s.cfg.DialTimeout)
			if err != nil {
				return x.fail(nil, err)
			}
			uc = newUpstreamConn(c)
		}
		// Held by the session while in use: closing the session ends a
		// request still waiting for its server.
		if !x.s.hold(uc.Conn) {
			uc.Close()
			return x.fail(nil, net.ErrClosed)
		}
		sent, resp, err := x.send(uc)
		if err != nil {
			x.s.release(uc.Conn)
			uc.Close()
			if reused && x.framing == noBody && attempt == 0 {
				// The server closed the idle connection meanwhile; the
				// request had no body and can go again.
				continue
			}
			return x.fail(sent, err)
		}
		keep, reusable := x.relayResponse(uc, sent, resp)
		x.s.release(uc.Conn)
		if reusable {
			x.s.pool.put(key, uc)
		} else {
			uc.Close()
		}
		return keep
	}
}

// send writes the request to uc, its body from a goroutine of its own
// (the server may answer before it read it all), and reads the response
// head. sent reports the end of the body's copy.
func (x *exchange) send(uc *upstreamConn) (sent chan error, resp *responseHead, err error) {
	sent = make(chan error, 1)
	if err := writeHead(uc.bw, x.head, x.fields); err != nil {
		sent <- err
		return sent, nil, err
	}
	if x.framing == noBody {
		sent <- nil
		if err := uc.bw.Flush(); err != nil {
			return sent, nil, err
		}
	} else {
		go func() { sent <- x.sendBody(uc) }()
	}
	for i := 0; ; i++ {
		resp, err = readResponseHead(uc.br)
		if err != nil || resp.code/100 != 1 || resp.code == 101 || i == maxInterim {
			return sent, resp, err
		}
	}
}

func (x *exchange) sendBody(uc *upstreamConn) error {
	var err error
	if x.framing == chunkBody {
		cw := chunkedWriter{uc.bw}
		_, err = io.Copy(flushAfter{cw, uc.bw}, x.body)
		if err == nil {
			err = cw.close(nil)
		}
	} else {
		_, err = io.Copy(flushAfter{uc.bw, uc.bw}, x.body)
	}
	if err == nil {
		err = uc.bw.Flush()
	}
	return err
}

// flushAfter flushes a buffered writer after every write: a body is
// passed on as it comes.
type flushAfter struct {
	w  io.Writer
	bw *bufio.Writer
}

func (f flushAfter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.bw.Flush()
	}
	return n, err
}

// relayResponse passes the response on to the client, with the framing
// the client can read. It reports whether the client's connection can
// carry another request, and whether uc can: both sides must have ended
// their messages cleanly.
func (x *exchange) relayResponse(uc *upstreamConn, sent chan error, resp *responseHead) (keep, reusable bool) {
	if resp.code == 101 {
		// Never asked for (Upgrade is stripped); an upgraded connection
		// would outlive the request it was decided for.
		uc.Close()
		return x.fail(sent, errProtocolSwitch), false
	}
	f, n, err := responseFraming(x.req.method, resp)
	if err != nil {
		uc.Close()
		return x.fail(sent, err), false
	}
	reusable = resp.keepAlive() && f != closeBody
	trailers := resp.h.Values("Trailer")
	h := resp.h
	removeHopHeaders(h)
	// A body of unknown length reaches an HTTP/1.1 client in chunks
	// (events stream as they come), an HTTP/1.0 client until the close.
	toClient := f
	clientKeep := x.req.keepAlive()
	if f == chunkBody || f == closeBody {
		toClient = chunkBody
		if x.req.minor == 0 {
			toClient, clientKeep = closeBody, false
		}
	}
	switch toClient {
	case chunkBody:
		h.Del("Content-Length")
		h.Set("Transfer-Encoding", "chunked")
		if f == chunkBody && len(trailers) > 0 {
			h.Set("Trailer", strings.Join(trailers, ", "))
		}
	case closeBody:
		h.Del("Content-Length")
	}
	if !clientKeep {
		h.Set("Connection", "close")
	}
	reason := resp.reason
	if reason == "" {
		reason = statusText(resp.code)
	}
	client := rawConn(x.client)
	if err := writeHead(client, "HTTP/1.1 "+strconv.Itoa(resp.code)+" "+reason, h); err != nil {
		uc.Close()
		x.finishBody(sent, uc)
		return false, false
	}
	src := bodyReader(uc.br, f, n)
	switch toClient {
	case chunkBody:
		cw := chunkedWriter{client}
		if _, err = io.Copy(cw, src); err == nil {
			var trailer header
			if cr, ok := src.(*chunkedReader); ok {
				trailer = cr.trailer
				removeHopHeaders(trailer)
			}
			err = cw.close(trailer)
		}
	case lengthBody, closeBody:
		_, err = io.Copy(client, src)
	}
	bodyOK := x.finishBody(sent, uc)
	reusable = reusable && err == nil && bodyOK && uc.br.Buffered() == 0
	return err == nil && clientKeep && bodyOK && toClient != closeBody, reusable
}

// bodyTracker reads a request body and tells when all of it was read.
type bodyTracker struct {
	r    io.Reader
	done atomic.Bool
}

func (b *bodyTracker) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.done.Store(true)
	}
	return n, err
}

// finishBody waits for the request body's copy to end. When the response
// came before the client sent it all, the copy is stopped: then the
// client's connection cannot carry another request. sent nil means the
// copy never started (nothing reached a server): the body is read past,
// up to drainLimit.
func (x *exchange) finishBody(sent chan error, uc *upstreamConn) bool {
	if sent == nil {
		_, err := io.CopyN(io.Discard, x.body, drainLimit+1)
		return err == io.EOF
	}
	select {
	case err := <-sent:
		return err == nil
	default:
	}
	if x.body.done.Load() {
		// All of it came from the client; its last bytes are on their
		// way to the server, which answered already.
		select {
		case err := <-sent:
			return err == nil
		case <-time.After(time.Second):
		}
	}
	x.client.SetReadDeadline(time.Unix(1, 0))
	if uc != nil {
		uc.Close()
	}
	<-sent
	x.client.SetReadDeadline(time.Time{})
	return false
}

// fail answers 502 for a request that got no response. The client's
// connection carries the next request if its body was read to the end.
func (x *exchange) fail(sent chan error, err error) bool {
	keep := x.finishBody(sent, nil) && x.req.keepAlive()
	h := header{}
	if !keep {
		h.Set("Connection", "close")
	}
	line := "fence: " + Escape(x.target.String()) + ": " + Escape(err.Error())
	return answer(x.client, 502, h, line) == nil && keep
}

var errProtocolSwitch = errors.New("unrequested protocol switch refused")
