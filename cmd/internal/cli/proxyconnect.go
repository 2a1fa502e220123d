package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
)

func init() {
	register(&command{
		name:    "proxy-connect",
		args:    "HOST PORT",
		summary: "connect stdin/stdout to HOST:PORT through the sandbox's SOCKS5 proxy (ssh ProxyCommand)",
		hidden:  true,
		run:     runProxyConnect,
	})
}

// socksAddr is the sandbox's SOCKS5 relay.
const socksAddr = "127.0.0.1:1080"

// runProxyConnect is ssh's ProxyCommand inside a sandbox
// (GIT_SSH_COMMAND="ssh -o ProxyCommand='fence proxy-connect %h %p'"): it
// asks the SOCKS5 proxy for HOST:PORT by name, so the daemon decides (and
// resolves) it, and relays stdin and stdout.
func runProxyConnect(ctx context.Context, stdio Stdio, args []string) error {
	fs := newFlagSet(stdio, lookup("proxy-connect"))
	via := fs.String("proxy", socksAddr, "SOCKS5 proxy address")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("fence proxy-connect: want HOST PORT")
	}
	host := pos[0]
	port, err := strconv.Atoi(pos[1])
	if err != nil || port < 1 || port > 65535 {
		return usagef("fence proxy-connect: bad port %q", pos[1])
	}
	c, err := socksConnect(*via, host, port)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer c.Close()
	in := stdio.In
	if in == nil {
		in = os.Stdin
	}
	done := make(chan struct{})
	go func() {
		io.Copy(c, in)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	go func() {
		io.Copy(stdio.Out, c)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// socksReplies names the SOCKS5 reply codes (RFC 1928).
var socksReplies = map[byte]string{
	1: "general failure", 2: "blocked by fence's network policy", 3: "network unreachable",
	4: "host unreachable", 5: "connection refused", 6: "TTL expired", 7: "command not supported",
	8: "address type not supported",
}

// socksConnect opens a SOCKS5 CONNECT to host:port through proxy. Names
// are sent as names (ATYP 3): the daemon resolves them after its policy
// allowed them.
func socksConnect(proxy, host string, port int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("proxy-connect: SOCKS proxy %s: %w", proxy, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := []byte{5, 1, 0, 5, 1, 0}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			a := ip.As4()
			req = append(append(req, 1), a[:]...)
		} else {
			a := ip.As16()
			req = append(append(req, 4), a[:]...)
		}
	} else {
		if len(host) > 255 {
			c.Close()
			return nil, fmt.Errorf("proxy-connect: host name too long")
		}
		req = append(append(req, 3, byte(len(host))), host...)
	}
	req = append(req, byte(port>>8), byte(port))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, fmt.Errorf("proxy-connect: %w", err)
	}
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[0] != 5 || hdr[1] != 0 {
		c.Close()
		return nil, fmt.Errorf("proxy-connect: SOCKS proxy %s refused the greeting", proxy)
	}
	var rep [4]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("proxy-connect: %s:%d: %w", host, port, err)
	}
	if rep[1] != 0 {
		c.Close()
		why := socksReplies[rep[1]]
		if why == "" {
			why = "error " + strconv.Itoa(int(rep[1]))
		}
		return nil, fmt.Errorf("proxy-connect: %s: %s", net.JoinHostPort(host, strconv.Itoa(port)), why)
	}
	skip := 0
	switch rep[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		var n [1]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			c.Close()
			return nil, err
		}
		skip = int(n[0]) + 2
	default:
		c.Close()
		return nil, errors.New("proxy-connect: bad SOCKS reply")
	}
	if _, err := io.ReadFull(c, make([]byte, skip)); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
