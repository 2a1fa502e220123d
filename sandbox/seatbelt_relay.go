package sandbox

import (
	"fmt"
	"net"
)

// listenRelay listens on an ephemeral port of 127.0.0.1 and relays every
// connection to the proxy daemon's unix socket sock. It is the macOS
// counterpart of the Linux init's in-namespace relay (no OS suffix, so that
// it is tested everywhere). The daemon knows the
// session by the socket, as on Linux; the port is reachable only from this
// session's sandbox (its profile names it) and from unsandboxed processes,
// which gain nothing by using it.
func listenRelay(sock string) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the relay to %q: %w", sock, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := net.Dial("unix", sock)
				if err != nil {
					// The daemon is gone: fail closed.
					c.Close()
					return
				}
				pipeConns(c, u, nil)
			}()
		}
	}()
	return ln, nil
}
