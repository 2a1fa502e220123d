package sandbox

import (
	"context"
	"fmt"
	"net"
	"strconv"
)

// startRelays listens inside the sandbox: the proxy ports (relayed to the
// daemon's per-session sockets through relayDir, an O_PATH descriptor
// opened before the session directory was masked) and the
// allowLocalOutbound ports (handed to the client, which dials the host).
// It runs before the lockdown, so binding needs no rights the command has.
func startRelays(st *initState, relayDir int) error {
	cfg := st.cfg
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	listen := func(host string, port int) (net.Listener, error) {
		return lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	if relayDir >= 0 {
		for _, r := range []struct {
			port int
			sock string
		}{{HTTPProxyPort, "http.sock"}, {SOCKSProxyPort, "socks.sock"}} {
			target := fmt.Sprintf("/proc/self/fd/%d/%s", relayDir, r.sock)
			for _, host := range []string{"127.0.0.1", "::1"} {
				ln, err := listen(host, r.port)
				if err != nil {
					if host == "::1" {
						continue // no IPv6 in this kernel: v4 is enough
					}
					return failf("", "listen on %s:%d for the proxy relay: %w", host, r.port, err)
				}
				go serveRelay(ln, func() (net.Conn, error) { return net.Dial("unix", target) })
			}
			st.debugf("relay: 127.0.0.1:%d and [::1]:%d -> %s/%s", r.port, r.port, cfg.Relay, r.sock)
		}
	}
	for _, port := range cfg.LocalOutbound {
		ln, err := listen("127.0.0.1", port)
		if err != nil {
			return failf("", "listen on 127.0.0.1:%d for allowLocalOutbound: %w", port, err)
		}
		go serveLocal(ln, port)
		st.debugf("relay: sandbox 127.0.0.1:%d -> host 127.0.0.1:%d (allowLocalOutbound)", port, port)
	}
	return nil
}

// serveRelay copies every accepted connection to a fresh dial.
func serveRelay(ln net.Listener, dial func() (net.Conn, error)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			up, err := dial()
			if err != nil {
				c.Close()
				return
			}
			pipeConns(c, up, &initOutbound)
		}()
	}
}

// serveLocal hands every accepted connection to the client.
func serveLocal(ln net.Listener, port int) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			continue
		}
		sendMsg(initFD, &message{Kind: "local", Port: port}, int(f.Fd()))
		f.Close()
	}
}
