package proxy

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// connectTo opens a CONNECT tunnel through ts to 127.0.0.1:port and
// returns the client end, after the 200.
func connectTo(t *testing.T, ts *testSession, port int) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", ts.httpSock)
	if err != nil {
		t.Fatal(err)
	}
	target := "127.0.0.1:" + strconv.Itoa(port)
	io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, " 200 ") {
		t.Fatalf("CONNECT %s: %q %v", target, line, err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// TestCloseEndsHalfClosedTunnels: closing a session ends its tunnels,
// also one whose client has finished sending and whose server never
// sends nor closes. Second red team round: such tunnels outlived their
// session, the relay waiting to read from the server for good, with their
// descriptors given back to the budget.
func TestCloseEndsHalfClosedTunnels(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			server <- c // held open, silent
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	ts := newTestSession(t, mustRules(t, nil, nil, port), nil)
	c := connectTo(t, ts, port)
	defer c.Close()
	defer func() {
		select {
		case sc := <-server:
			sc.Close()
		default:
		}
	}()
	c.(*net.UnixConn).CloseWrite()
	time.Sleep(100 * time.Millisecond)
	ts.Close()
	relaying := func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "proxy.relay(")
	}
	for deadline := time.Now().Add(5 * time.Second); relaying(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the tunnel's relay outlived the session, waiting for the server")
		}
	}
}

// TestLocalPortNoTLSCheck: a tunnel to an allowLocalOutbound port carries
// whatever the port speaks, on a TLS port too: the destination is the
// host's own port whatever server name the client sends (a dev server's
// mkcert name). Second red team round: allowLocalOutbound = [443] broke
// such connections once they went through the proxy.
func TestLocalPortNoTLSCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 5)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadFull(c, b)
		got <- string(b)
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	ts := newTestSession(t, mustRules(t, nil, nil, port), nil, func(c *Config) { c.TLSPorts = []int{port} })
	c := connectTo(t, ts, port)
	defer c.Close()
	io.WriteString(c, "hello")
	select {
	case s := <-got:
		if s != "hello" {
			t.Errorf("the local port got %q, want hello", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing reached the local port")
	}
}
