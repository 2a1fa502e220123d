package sandbox

import (
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestListenLoopback: the relays' hand-made listeners are plain TCP
// listeners, the type the net package makes (quiesceRelays
// reads their accept queue through *net.TCPListener), they accept, and a
// port in use is an error that says so.
func TestListenLoopback(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		ln, err := listenLoopback(host, 0)
		if err != nil {
			if host == "::1" {
				t.Logf("no IPv6 here: %v", err)
				continue
			}
			t.Fatal(err)
		}
		defer ln.Close()
		tl, ok := ln.(*net.TCPListener)
		if !ok {
			t.Fatalf("%s: listener is %T, want *net.TCPListener", host, ln)
		}
		raw, err := tl.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var proto, accepting int
		raw.Control(func(fd uintptr) {
			proto, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL)
			accepting, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		})
		if proto != unix.IPPROTO_TCP || accepting != 1 {
			t.Errorf("%s: protocol %d (want TCP, never MPTCP), listening %d", host, proto, accepting)
		}
		addr := ln.Addr().(*net.TCPAddr)
		if !addr.IP.Equal(net.ParseIP(host)) || addr.Port == 0 {
			t.Errorf("%s: listening on %v", host, addr)
		}
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		a, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := a.Read(b); err != nil || b[0] != 'x' {
			t.Errorf("%s: read %q, %v", host, b, err)
		}
		a.Close()
		c.Close()
		if _, err := listenLoopback(host, addr.Port); err == nil || !strings.Contains(err.Error(), "bind: address already in use") {
			t.Errorf("%s: second listener on port %d: %v, want bind: address already in use", host, addr.Port, err)
		}
	}
}
