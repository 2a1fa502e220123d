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
	// target; upstreamIdleTimeout how long one is kept.
	maxIdlePerTarget    = 8
	upstreamIdleTimeout = 60 * time.Second
	// maxInterim bounds the interim (1xx) responses skipped before the
	// final one.
	maxInterim = 5
)

// upstreamConn is a connection to a server that can carry one request
// after the other.
type upstreamConn struct {
	net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	idle time.Time // since when it waits in the pool
}

func newUpstreamConn(c net.Conn) *upstreamConn {
	return &upstreamConn{Conn: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}
}

// upstreamPool keeps idle upstream connections per decided target, for
// the next request to the same target: each request is decided anyway,
// and a connection only ever goes back to the target it was dialled for.
type upstreamPool struct {
	mu     sync.Mutex
	idle   map[string][]*upstreamConn
	closed bool
}

// get returns an idle connection to target that is still open, or nil.
func (p *upstreamPool) get(target string) *upstreamConn {
	for {
		p.mu.Lock()
		l := p.idle[target]
		if len(l) == 0 {
			p.mu.Unlock()
			return nil
		}
		uc := l[len(l)-1]
		p.idle[target] = l[:len(l)-1]
		p.mu.Unlock()
		if time.Since(uc.idle) < upstreamIdleTimeout && stillOpen(uc.Conn) {
			return uc
		}
		uc.Close()
	}
}

// put keeps uc for the next request to target, or closes it.
func (p *upstreamPool) put(target string, uc *upstreamConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[string][]*upstreamConn{}
	}
	l := p.idle[target]
	// The oldest are the first to expire.
	for len(l) > 0 && time.Since(l[0].idle) >= upstreamIdleTimeout {
		l[0].Close()
		l = l[1:]
	}
	if p.closed || len(l) >= maxIdlePerTarget {
		uc.Close()
	} else {
		uc.idle = time.Now()
		l = append(l, uc)
	}
	p.idle[target] = l
}

// close closes every idle connection, and those put back later.
func (p *upstreamPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, l := range p.idle {
		for _, uc := range l {
			uc.Close()
		}
	}
	p.idle = nil
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
