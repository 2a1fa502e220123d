package sandbox

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// listenLoopback listens on host:port (a loopback address) in the init's
// network namespace. The socket is made by hand, as plain TCP (never
// Multipath TCP, which the seccomp filter may deny to the command anyway),
// with the kernel's largest backlog: net.Listen would first read
// /proc/sys/net/core/somaxconn for the backlog, with a 64 KiB buffer the
// kernel allocates and clears again, a tenth of a millisecond in every
// init.
func listenLoopback(host string, port int) (net.Listener, error) {
	ip := net.ParseIP(host)
	var sa unix.Sockaddr
	family := unix.AF_INET6
	if ip4 := ip.To4(); ip4 != nil {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: port, Addr: [4]byte(ip4)}
	} else {
		sa = &unix.SockaddrInet6{Port: port, Addr: [16]byte(ip.To16())}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "tcp:"+net.JoinHostPort(host, strconv.Itoa(port)))
	defer f.Close()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, os.NewSyscallError("setsockopt", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}
	// The kernel caps the backlog at somaxconn.
	if err := unix.Listen(fd, 1<<16-1); err != nil {
		return nil, os.NewSyscallError("listen", err)
	}
	return net.FileListener(f)
}

// proxyHosts are the loopback addresses the proxy relays listen on.
var proxyHosts = []string{"127.0.0.1", "::1"}

// listenProxies opens the proxy relays' listeners ahead, while a warm init
// waits for its client (nothing else is in its network namespace yet),
// keyed by address. Those it cannot open are opened again, and fail, in
// startRelays.
func listenProxies() map[string]net.Listener {
	lns := map[string]net.Listener{}
	for _, port := range []int{HTTPProxyPort, SOCKSProxyPort} {
		for _, host := range proxyHosts {
			addr := net.JoinHostPort(host, strconv.Itoa(port))
			if ln, err := listenLoopback(host, port); err == nil {
				lns[addr] = ln
			}
		}
	}
	return lns
}

// startRelays listens inside the sandbox: the proxy ports (relayed to the
// daemon's per-session sockets through relayDir, an O_PATH descriptor
// opened before the session directory was masked) and the
// allowLocalOutbound ports (handed to the client, which dials the host).
// It runs before the lockdown, so binding needs no rights the command has.
// ahead holds listeners opened at boot (listenProxies); those not used
// are closed, so that without a relay nothing listens.
func startRelays(st *initState, relayDir int, ahead map[string]net.Listener) error {
	cfg := st.cfg
	defer func() {
		for _, ln := range ahead {
			ln.Close()
		}
	}()
	listen := func(host string, port int) (net.Listener, error) {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		ln, ok := ahead[addr]
		var err error
		if ok {
			delete(ahead, addr)
		} else {
			ln, err = listenLoopback(host, port)
		}
		if err == nil {
			relayListeners = append(relayListeners, ln)
		}
		return ln, err
	}
	if relayDir >= 0 {
		for _, r := range []struct {
			port int
			sock string
		}{{HTTPProxyPort, "http.sock"}, {SOCKSProxyPort, "socks.sock"}} {
			target := fmt.Sprintf("/proc/self/fd/%d/%s", relayDir, r.sock)
			for _, host := range proxyHosts {
				ln, err := listen(host, r.port)
				if err != nil {
					if host == "::1" {
						continue // no IPv6 in this kernel: v4 is enough
					}
					return failf("", "listen on %s:%d for the proxy relay: %w", host, r.port, err)
				}
				serve(func() { serveRelay(ln, func() (net.Conn, error) { return net.Dial("unix", target) }) })
			}
			st.debugf("relay: 127.0.0.1:%d and [::1]:%d -> %s/%s", r.port, r.port, cfg.Relay, r.sock)
		}
	}
	for _, port := range cfg.LocalOutbound {
		ln, err := listen("127.0.0.1", port)
		if err != nil {
			return failf("", "listen on 127.0.0.1:%d for allowLocalOutbound: %w", port, err)
		}
		serve(func() { serveLocal(ln, port) })
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
		initOutbound.add() // counted from the accept, before the dial
		go func() {
			up, err := dial()
			if err != nil {
				c.Close()
				initOutbound.done()
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
		// Counted until the client has it (its read loop counts it from
		// there): the "exit" message must not overtake it.
		initOutbound.add()
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			initOutbound.done()
			continue
		}
		sendMsg(initFD, &message{Kind: "local", Port: port}, int(f.Fd()))
		f.Close()
		initOutbound.done()
	}
}

// relayListeners are the init's listeners whose connections leave the
// sandbox, and relayServing their accepting goroutines (see
// quiesceRelays).
var (
	relayListeners []net.Listener
	relayServing   sync.WaitGroup
)

// passiveOpens reports whether a TCP connection was ever established to a
// listener in this network namespace (Tcp PassiveOpens in /proc/net/snmp,
// the namespace's own counters; counted when the handshake completes and
// the connection enters an accept queue). True when it cannot tell.
func passiveOpens() bool {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return true
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f, ok := strings.CutPrefix(line, "Tcp: ")
		if !ok {
			continue
		}
		if names == nil {
			names = strings.Fields(f)
			continue
		}
		for i, v := range strings.Fields(f) {
			if i < len(names) && names[i] == "PassiveOpens" {
				return v != "0"
			}
		}
	}
	return true
}

// serve runs an accepting loop for quiesceRelays to wait for.
func serve(loop func()) {
	relayServing.Add(1)
	go func() {
		defer relayServing.Done()
		loop()
	}()
}

// quiesceRelays makes sure that every connection a process in the sandbox
// made before it died is accepted and counted in initOutbound before the
// init reports the command's status (call it once nothing is left to
// connect). It waits (up to limit) until the listeners' accept queues are
// empty (for a listening TCP socket the kernel reports the queue's length
// in tcpi_unacked), then closes them and waits for their accepting
// goroutines to end: one that has just taken a connection from the queue
// counts it before it returns. (Before, a connection taken from the queue
// but not yet counted was lost about once in a few hundred runs under
// load: TestLocalOutboundLastBytesSmall.)
//
// It reports whether no connection was ever established in the sandbox's
// network namespace (then none went through the relays).
func quiesceRelays(limit time.Duration) (offline bool) {
	if len(relayListeners) == 0 || !passiveOpens() {
		// Nothing to wait for (fence -- true pays nothing).
		return true
	}
	deadline := time.Now().Add(limit)
	for _, ln := range relayListeners {
		raw, err := ln.(*net.TCPListener).SyscallConn()
		if err != nil {
			continue
		}
		for {
			queued := uint32(0)
			raw.Control(func(fd uintptr) {
				if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
					queued = info.Unacked
				}
			})
			if queued == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, ln := range relayListeners {
		ln.Close()
	}
	ended := make(chan struct{})
	go func() {
		relayServing.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(time.Until(deadline)):
	}
	return false
}
