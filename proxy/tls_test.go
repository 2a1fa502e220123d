package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientHello returns the first flight crypto/tls sends for serverName.
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		c.Handshake()
		a.Close()
	}()
	var buf bytes.Buffer
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	b.Close()
	buf.Write(hdr)
	buf.Write(body)
	return buf.Bytes()
}

// fragment splits a one-record ClientHello into two records.
func fragment(rec []byte) []byte {
	body := rec[5:]
	half := len(body) / 2
	var out []byte
	for _, part := range [][]byte{body[:half], body[half:]} {
		h := []byte{rec[0], rec[1], rec[2], 0, 0}
		binary.BigEndian.PutUint16(h[3:], uint16(len(part)))
		out = append(append(out, h...), part...)
	}
	return out
}

func TestReadClientHello(t *testing.T) {
	hello := clientHello(t, "allowed.example")
	for name, in := range map[string][]byte{"one record": hello, "two records": fragment(hello)} {
		raw, sni, err := readClientHello(bytes.NewReader(append(append([]byte{}, in...), "after"...)))
		if err != nil || sni != "allowed.example" || !bytes.Equal(raw, in) {
			t.Errorf("%s: sni %q err %v, read %d of %d bytes", name, sni, err, len(raw), len(in))
		}
	}
	if _, sni, err := readClientHello(bytes.NewReader(clientHello(t, ""))); err != nil || sni != "" {
		t.Errorf("no SNI: %q %v", sni, err)
	}
	for _, in := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "SSH-2.0-OpenSSH_9.2\r\n", "\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"} {
		if _, _, err := readClientHello(strings.NewReader(in)); !errors.Is(err, errNotTLS) {
			t.Errorf("%q: %v, want errNotTLS", in, err)
		}
	}
	if _, _, err := readClientHello(bytes.NewReader(hello[:40])); err == nil {
		t.Error("truncated hello accepted")
	}
}

func FuzzReadClientHello(f *testing.F) {
	f.Add(clientHello(f, "allowed.example"))
	f.Add(fragment(clientHello(f, "x.example")))
	f.Add([]byte("\x16\x03\x01\x00\x04\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, sni, err := readClientHello(bytes.NewReader(b))
		if len(raw) > len(b) || !bytes.Equal(raw, b[:len(raw)]) {
			t.Fatalf("raw is not a prefix of the input")
		}
		if err != nil && sni != "" {
			t.Fatalf("sni %q with error %v", sni, err)
		}
	})
}

func TestTunnelSNI(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "TLS-OK") }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	p := strconv.Itoa(port)
	ts := newTestSession(t, mustRules(t, []string{"allowed.test:" + p, "other.test:" + p}, []string{"denied.test"}, port),
		map[string][]string{"allowed.test": {"127.0.0.1"}, "other.test": {"127.0.0.1"}},
		func(c *Config) { c.TLSPorts = []int{port} })

	httpsVia := func(dial func() (net.Conn, error), sni string) (string, error) {
		c, err := dial()
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			return "", err
		}
		io.WriteString(tc, "GET / HTTP/1.1\r\nHost: "+sni+"\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(tc)
		return string(b), nil
	}
	viaConnect := func() (net.Conn, error) {
		c, err := net.Dial("unix", ts.httpSock)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(c, "CONNECT allowed.test:%d HTTP/1.1\r\n\r\n", port)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != 200 {
			c.Close()
			return nil, fmt.Errorf("CONNECT: %v %v", resp, err)
		}
		return &bufConn{Conn: c, r: br}, nil
	}
	viaSOCKS := func() (net.Conn, error) {
		code, c := socks(t, ts.socksSock, 1, 3, []byte("allowed.test"), port)
		if code != 0 {
			c.Close()
			return nil, fmt.Errorf("SOCKS reply %#x", code)
		}
		return c, nil
	}
	for name, dial := range map[string]func() (net.Conn, error){"CONNECT": viaConnect, "SOCKS": viaSOCKS} {
		for _, tt := range []struct {
			sni string
			ok  bool
		}{{"allowed.test", true}, {"ALLOWED.test.", true}, {"other.test", true}, {"evil.test", false}, {"denied.test", false}} {
			body, err := httpsVia(dial, tt.sni)
			if ok := err == nil && strings.Contains(body, "TLS-OK"); ok != tt.ok {
				t.Errorf("%s to allowed.test with SNI %q: %q %v, want ok=%v", name, tt.sni, body, err, tt.ok)
			}
		}
		// Not TLS at all on a TLS port (P-11).
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n")
		if b, _ := io.ReadAll(c); len(b) != 0 {
			t.Errorf("%s: plain HTTP on a TLS port got an answer: %q", name, b)
		}
		c.Close()
	}
	var sawSNI bool
	for _, e := range ts.Events() {
		if strings.Contains(e.Detail, "TLS server name evil.test") {
			sawSNI = true
		}
	}
	if !sawSNI {
		t.Errorf("no event for the mismatched SNI: %+v", ts.Events())
	}
}
