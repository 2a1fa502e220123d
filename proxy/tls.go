package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// A tunnel to port 443 must start with a TLS ClientHello whose server name
// (SNI), when it has one, is the tunnel's own host or another name the
// rules allow (ATTACKS.md P-10, P-11): otherwise an allowed shared front
// end could be asked, in the clear or by SNI, for a site fence never
// allowed. What travels inside TLS (the Host header, ECH's inner name)
// stays out of reach without interception.

const (
	maxClientHello   = 64 << 10
	clientHelloLimit = 10 * time.Second
)

var errNotTLS = errors.New("not a TLS ClientHello")

// readClientHello reads the first TLS handshake message from r and returns
// every byte it read, and the server name it carries ("" when none). It
// returns errNotTLS for anything that is not a ClientHello.
func readClientHello(r io.Reader) ([]byte, string, error) {
	var raw, hs []byte
	need := -1
	for need < 0 || len(hs) < need {
		var hdr [5]byte
		if k, err := io.ReadFull(r, hdr[:]); err != nil {
			return append(raw, hdr[:k]...), "", err
		}
		raw = append(raw, hdr[:]...)
		if hdr[0] != 0x16 || hdr[1] != 3 {
			return raw, "", errNotTLS
		}
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		if n == 0 || n > 16384+2048 || len(raw)+n > maxClientHello {
			return raw, "", errNotTLS
		}
		body := make([]byte, n)
		k, err := io.ReadFull(r, body)
		raw = append(raw, body[:k]...)
		if err != nil {
			return raw, "", err
		}
		hs = append(hs, body...)
		if need < 0 && len(hs) >= 4 {
			if hs[0] != 1 {
				return raw, "", errNotTLS
			}
			need = 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
			if need > maxClientHello {
				return raw, "", errNotTLS
			}
		}
	}
	sni, err := parseClientHelloSNI(hs[4:need])
	return raw, sni, err
}

// parseClientHelloSNI returns the host_name of the server_name extension
// of a ClientHello body (RFC 8446 §4.1.2, RFC 6066 §3).
func parseClientHelloSNI(b []byte) (string, error) {
	s := cursor{b: b}
	s.skip(2 + 32)  // legacy_version, random
	s.skip(s.u8())  // legacy_session_id
	s.skip(s.u16()) // cipher_suites
	s.skip(s.u8())  // legacy_compression_methods
	if s.bad || s.empty() {
		if s.bad {
			return "", errNotTLS
		}
		return "", nil // no extensions
	}
	ext := cursor{b: s.bytes(s.u16())}
	for !ext.bad && !ext.empty() {
		typ := ext.u16()
		data := cursor{b: ext.bytes(ext.u16())}
		if typ != 0 {
			continue
		}
		list := cursor{b: data.bytes(data.u16())}
		for !list.bad && !list.empty() {
			kind := list.u8()
			name := list.bytes(list.u16())
			if kind == 0 && !list.bad {
				return string(name), nil
			}
		}
		if list.bad || data.bad {
			return "", errNotTLS
		}
	}
	if s.bad || ext.bad {
		return "", errNotTLS
	}
	return "", nil
}

type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) empty() bool { return len(c.b) == 0 }

func (c *cursor) bytes(n int) []byte {
	if c.bad || n > len(c.b) {
		c.bad = true
		return nil
	}
	out := c.b[:n]
	c.b = c.b[n:]
	return out
}

func (c *cursor) skip(n int) { c.bytes(n) }

func (c *cursor) u8() int {
	b := c.bytes(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (c *cursor) u16() int {
	b := c.bytes(2)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

// checkSNI decides a tunnel's ClientHello: "" when it may pass, else why not.
func (s *Session) checkSNI(t Target, sni string, err error) string {
	if err != nil {
		if errors.Is(err, errNotTLS) {
			return fmt.Sprintf("port %d carries TLS only, and this is not a TLS ClientHello", t.Port)
		}
		return "no TLS ClientHello: " + err.Error()
	}
	if sni == "" || (t.Host != "" && equalFoldHost(sni, t.Host)) {
		return ""
	}
	st, perr := ParseTarget(sni, t.Port)
	if perr != nil || st.IP.IsValid() {
		return fmt.Sprintf("TLS server name %q is not a host name", sni)
	}
	if v := s.rules.Load().Check(st); !v.Allowed {
		return fmt.Sprintf("TLS server name %s differs from the tunnel's host and is not allowed itself (%s)", st.Host, v.Reason)
	}
	return ""
}

func equalFoldHost(a, b string) bool {
	t, err := ParseTarget(a, 1)
	return err == nil && t.Host == b
}

// sniGuard wraps the upstream connection of a SOCKS tunnel to port 443:
// the client's first bytes are held until they form a ClientHello that
// [Session.checkSNI] accepts; anything else closes the tunnel.
type sniGuard struct {
	net.Conn
	s *Session
	t Target

	mu      sync.Mutex // guards the fields below
	buf     []byte
	decided bool
	ok      bool
}

func (g *sniGuard) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.decided {
		if !g.ok {
			return 0, net.ErrClosed
		}
		return g.Conn.Write(p)
	}
	g.buf = append(g.buf, p...)
	raw, sni, err := readClientHello(&sliceReader{b: g.buf})
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		if len(g.buf) > maxClientHello {
			err = errNotTLS
		} else {
			return len(p), nil // wait for the rest of the ClientHello
		}
	}
	g.decided = true
	if why := g.s.checkSNI(g.t, sni, err); why != "" {
		g.s.blocked("SOCKS", g.t.String(), g.t.Name(), "built-in: TLS server name check", why, "")
		g.Conn.Close()
		return 0, net.ErrClosed
	}
	g.ok = true
	_ = raw // the whole buffer goes: bytes after the ClientHello too
	if _, err := g.Conn.Write(g.buf); err != nil {
		return 0, err
	}
	g.buf = nil
	return len(p), nil
}

func (g *sniGuard) CloseWrite() error {
	if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return g.Conn.Close()
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
