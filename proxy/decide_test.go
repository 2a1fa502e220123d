package proxy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func mustRules(t testing.TB, allow, deny []string, local ...int) *Rules {
	t.Helper()
	r := &Rules{LocalOutbound: local}
	for _, s := range allow {
		p, err := ParsePattern(s)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", s, err)
		}
		r.Allow = append(r.Allow, p)
	}
	for _, s := range deny {
		p, err := ParsePattern(s)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", s, err)
		}
		r.Deny = append(r.Deny, p)
	}
	return r
}

func TestCheck(t *testing.T) {
	r := mustRules(t,
		[]string{"allowed.example", "*.github.com", "github.com:22", "10.1.2.3", "[2001:db8::1]:8443", "db.corp.example:5432"},
		[]string{"bad.github.com", "telemetry.example:443"},
		5555)
	tests := []struct {
		host      string
		port      int
		allowed   bool
		exact     bool
		reasonHas string
	}{
		{"allowed.example", 443, true, true, ""},
		{"allowed.example", 80, true, true, ""},
		{"allowed.example.", 443, true, true, ""},
		{"ALLOWED.Example", 443, true, true, ""},
		{"allowed.example", 22, false, false, "port 22"},
		{"allowed.example", 8080, false, false, "port 8080"},
		{"sub.allowed.example", 443, false, false, "not in allowedDomains"},
		{"api.github.com", 443, true, false, ""},
		{"github.com", 443, false, false, "port 443"},
		{"github.com", 22, true, true, ""},
		{"bad.github.com", 443, false, false, "deniedDomains"},
		{"bad.github.com", 22, false, false, "deniedDomains"},
		{"evilgithub.com", 443, false, false, "not in"},
		{"10.1.2.3", 443, true, true, ""},
		{"10.1.2.3", 22, false, false, "port"},
		{"[2001:db8::1]", 8443, true, true, ""},
		{"[::ffff:10.1.2.3]", 443, true, true, ""},
		{"140.82.112.3", 443, false, false, "not in"},
		{"127.0.0.1", 5555, true, true, ""},
		{"localhost", 5555, true, true, ""},
		{"127.0.0.1", 5556, false, false, "not in"},
		{"[::ffff:127.0.0.1]", 80, false, false, "IPv4-mapped"},
		{"[::ffff:127.0.0.1]", 5555, false, false, "IPv4-mapped"},
		{"metadata.google.internal", 80, false, false, "metadata"},
		{"telemetry.example", 443, false, false, "denied"},
	}
	for _, tt := range tests {
		tg, err := ParseTarget(tt.host, tt.port)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", tt.host, err)
			continue
		}
		v := r.Check(tg)
		if v.Allowed != tt.allowed || (tt.allowed && v.Exact != tt.exact) || !strings.Contains(v.Reason, tt.reasonHas) {
			t.Errorf("Check(%s) = %+v, want allowed=%v exact=%v reason~%q", tg, v, tt.allowed, tt.exact, tt.reasonHas)
		}
	}
}

func TestParseTargetRejects(t *testing.T) {
	for _, h := range []string{"127.1", "2130706433", "0x7f000001", "a.b.c.1", "evil\x1b]52;c;x\x07", "a b", "", "[fe80::1%eth0]", "[1.2.3.4]", "*.x.com", "x..com", "xn--\u202e.com", "[::1"} {
		if tg, err := ParseTarget(h, 80); err == nil {
			t.Errorf("ParseTarget(%q) = %+v, want error", h, tg)
		}
	}
	for _, hp := range []string{"example.com", "example.com:0443", "example.com:99999", "example.com:+443", "example.com:", ":443", "::1:443"} {
		if tg, err := ParseHostPort(hp); err == nil {
			t.Errorf("ParseHostPort(%q) = %+v, want error", hp, tg)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want AddrClass
	}{
		{"1.1.1.1", ClassPublic},
		{"2606:4700:4700::1111", ClassPublic},
		{"127.0.0.1", ClassLoopback},
		{"127.3.4.5", ClassLoopback},
		{"::1", ClassLoopback},
		{"::ffff:127.0.0.1", ClassLoopback},
		{"0.0.0.0", ClassBlocked},
		{"::", ClassBlocked},
		{"169.254.169.254", ClassBlocked},
		{"::ffff:169.254.169.254", ClassBlocked},
		{"64:ff9b::a9fe:a9fe", ClassBlocked},
		{"64:ff9b::7f00:1", ClassBlocked},
		{"64:ff9b::a00:1", ClassBlocked},
		{"64:ff9b::101:101", ClassPublic},
		{"2002:7f00:1::1", ClassBlocked},
		{"2002:a9fe:a9fe::", ClassBlocked},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", ClassBlocked},
		{"::127.0.0.1", ClassBlocked},
		{"fd00:ec2::254", ClassBlocked},
		{"100.100.100.200", ClassBlocked},
		{"169.254.170.2", ClassBlocked},
		{"fe80::1", ClassBlocked},
		{"ff02::1", ClassBlocked},
		{"224.0.0.1", ClassBlocked},
		{"255.255.255.255", ClassBlocked},
		{"240.0.0.1", ClassBlocked},
		{"10.0.0.5", ClassPrivate},
		{"172.16.0.1", ClassPrivate},
		{"192.168.1.1", ClassPrivate},
		{"100.64.0.1", ClassPrivate},
		{"fd12:3456::1", ClassPrivate},
		{"192.0.2.2", ClassPrivate},
		{"198.51.100.7", ClassPrivate},
		{"203.0.113.9", ClassPrivate},
		{"2001:db8::2", ClassPrivate},
		{"3fff::1", ClassPrivate},
		{"64:ff9b::c000:202", ClassBlocked},
	}
	for _, tt := range tests {
		got, what := Classify(netip.MustParseAddr(tt.addr))
		if got != tt.want {
			t.Errorf("Classify(%s) = %v (%s), want %v", tt.addr, got, what, tt.want)
		}
	}
}

// fakeResolver answers from a map and counts lookups per name.
type fakeResolver struct {
	m     map[string][]string
	count atomic.Int64
	names chan string
}

func (f *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.count.Add(1)
	if f.names != nil {
		select {
		case f.names <- host:
		default:
		}
	}
	ss, ok := f.m[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func TestDecide(t *testing.T) {
	res := &fakeResolver{m: map[string][]string{
		"pub.example":          {"93.184.216.34"},
		"mixed.example":        {"127.0.0.1", "93.184.216.34"},
		"rebind.wild.example":  {"127.0.0.1"},
		"meta.wild.example":    {"169.254.169.254"},
		"mapped.wild.example":  {"::ffff:169.254.169.254"},
		"private.wild.example": {"10.0.0.5"},
		"db.corp.example":      {"10.0.0.5"},
		"local.corp.example":   {"127.0.0.1"},
	}}
	r := mustRules(t, []string{"pub.example", "mixed.example", "*.wild.example", "db.corp.example", "local.corp.example:7000"}, []string{"denied.wild.example"}, 7000)
	tests := []struct {
		host    string
		port    int
		blocked bool
		addrs   int
	}{
		{"pub.example", 443, false, 1},
		{"mixed.example", 443, false, 1},
		{"rebind.wild.example", 443, true, 0},
		{"meta.wild.example", 80, true, 0},
		{"mapped.wild.example", 80, true, 0},
		{"private.wild.example", 443, true, 0},
		{"db.corp.example", 443, false, 1},
		{"local.corp.example", 7000, false, 1},
		{"denied.wild.example", 443, true, 0},
		{"nothere.example", 443, true, 0},
		{"localhost", 7000, false, 2},
		{"localhost", 80, true, 0},
	}
	for _, tt := range tests {
		checkDecide(t, r, res, tt.host, tt.port, tt.blocked, tt.addrs)
	}
	// Names refused by the name check are never resolved.
	res.count.Store(0)
	for _, h := range []string{"denied.wild.example", "nothere.example", "x.leak.attacker.example", "metadata.google.internal"} {
		tg, _ := ParseTarget(h, 443)
		Decide(context.Background(), r, res, tg)
	}
	if n := res.count.Load(); n != 0 {
		t.Errorf("denied names caused %d lookups, want 0", n)
	}
}

// checkDecide decides host:port under r and checks whether it is blocked
// and how many addresses it may be dialed at; ok is false when Decide
// failed (reported).
func checkDecide(t *testing.T, r *Rules, res Resolver, host string, port int, blocked bool, addrs int) (d Decision, ok bool) {
	t.Helper()
	tg, err := ParseTarget(host, port)
	if err != nil {
		t.Fatal(err)
	}
	d, err = Decide(context.Background(), r, res, tg)
	if err != nil {
		t.Errorf("Decide(%s): %v", tg, err)
		return d, false
	}
	if d.Blocked != blocked || len(d.Addrs) != addrs {
		t.Errorf("Decide(%s) = blocked %v addrs %v (%s), want blocked %v with %d addrs", tg, d.Blocked, d.Addrs, d.Reason, blocked, addrs)
	}
	return d, true
}

// TestDecideHostAddrs: an address of one of the host's own interfaces is
// the host, whatever name led to it: refused like loopback unless the port
// is in allowLocalOutbound (P-04 by way of the host's LAN or global address).
func TestDecideHostAddrs(t *testing.T) {
	self := []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("2606:4700::1234")}
	old := hostAddrs
	hostAddrs = func() ([]netip.Addr, error) { return self, nil }
	t.Cleanup(func() { hostAddrs = old })
	res := &fakeResolver{m: map[string][]string{
		"self.wild.example":  {"93.184.216.34"},
		"self6.wild.example": {"2606:4700::1234"},
		"mixed.wild.example": {"93.184.216.34", "93.184.216.35"},
		"pub.wild.example":   {"93.184.216.35"},
		"db.corp.example":    {"10.0.0.7"},
		"lan.corp.example":   {"10.0.0.8"},
	}}
	r := mustRules(t, []string{"*.wild.example:8080", "*.wild.example:9000", "db.corp.example:8080", "lan.corp.example:8080", "93.184.216.34:8080", "93.184.216.34:9000"}, nil, 9000)
	for _, tt := range []struct {
		host    string
		port    int
		blocked bool
		addrs   int
	}{
		{"self.wild.example", 8080, true, 0},
		{"self6.wild.example", 8080, true, 0},
		{"mixed.wild.example", 8080, false, 1},
		{"pub.wild.example", 8080, false, 1},
		{"db.corp.example", 8080, true, 0}, // exact entry, private: still the host
		{"lan.corp.example", 8080, false, 1},
		{"93.184.216.34", 8080, true, 0},
		// allowLocalOutbound opens the port on the host, at any of its
		// addresses, but not through the mapped form.
		{"self.wild.example", 9000, false, 1},
		{"93.184.216.34", 9000, false, 1},
		{"[::ffff:93.184.216.34]", 9000, true, 0},
	} {
		d, ok := checkDecide(t, r, res, tt.host, tt.port, tt.blocked, tt.addrs)
		if ok && d.Blocked && !strings.Contains(d.Reason, "this host") {
			t.Errorf("Decide(%s) reason %q does not say it is this host's address", d.Target, d.Reason)
		}
	}
	// Fail closed when the host's addresses cannot be listed.
	hostAddrs = func() ([]netip.Addr, error) { return nil, errors.New("netlink: boom") }
	tg, _ := ParseTarget("pub.wild.example", 8080)
	if d, err := Decide(context.Background(), r, res, tg); err == nil && !d.Blocked {
		t.Errorf("Decide(%s) with no host address list = %+v, want an error", tg, d)
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"evil.example:443":        "evil.example:443",
		"\x1b]52;c;Y3Vy\x07":      `\x1b]52;c;Y3Vy\x07`,
		"a\r\nb":                  `a\x0d\x0ab`,
		"x\u202ey":                `x\u202ey`,
		"\xff":                    `\xff`,
		`back\slash`:              `back\\slash`,
		"caf\u00e9":               "caf\u00e9",
		"zero\u200bwidth\u0085nl": `zero\u200bwidth\u0085nl`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"example.com", "*.example.com", "github.com:22", "1.2.3.4", "[::1]:80", "::1", "*", "*:80", "a..b", "[fe80::1%x]", "*.com", "x.com.:443", "0x7f.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			return
		}
		// What parses prints back to something that parses to the same.
		q, err := ParsePattern(p.String())
		if err != nil {
			t.Fatalf("ParsePattern(%q) = %+v, but its String %q does not parse: %v", s, p, p.String(), err)
		}
		if q != p {
			t.Fatalf("round trip of %q: %+v != %+v", s, p, q)
		}
		if p.Host == "" && !p.IP.IsValid() {
			t.Fatalf("ParsePattern(%q) = %+v: neither host nor IP", s, p)
		}
		for i := 0; i < len(p.Host); i++ {
			if c := p.Host[i]; c < 0x21 || c > 0x7e || c >= 'A' && c <= 'Z' {
				t.Fatalf("ParsePattern(%q): host %q has byte %q", s, p.Host, c)
			}
		}
	})
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"allowed.example", "ALLOWED.EXAMPLE.", "x.github.com", "github.com", "10.1.2.3", "[::ffff:10.1.2.3]", "127.0.0.1", "localhost", "\x1b[31m", "a.allowed.example"} {
		f.Add(s, 443)
	}
	r := mustRules(f, []string{"allowed.example", "*.github.com", "10.1.2.3"}, []string{"bad.github.com"})
	f.Fuzz(func(t *testing.T, host string, port int) {
		tg, err := ParseTarget(host, port)
		if err != nil {
			return
		}
		v := r.Check(tg)
		if !v.Allowed {
			return
		}
		// Anything allowed must be one of the listed names or below a
		// wildcard, on a default port, and never the denied name.
		ok := tg.Host == "allowed.example" || strings.HasSuffix(tg.Host, ".github.com") || tg.IP == netip.MustParseAddr("10.1.2.3")
		if !ok || tg.Host == "bad.github.com" || (tg.Port != 443 && tg.Port != 80) {
			t.Fatalf("Check(%s) allowed: %+v", tg, v)
		}
	})
}

func FuzzParseHostPort(f *testing.F) {
	for _, s := range []string{"example.com:443", "[::1]:80", "1.2.3.4:22", "a:0443", "x:99999", "[::ffff:127.0.0.1]:80", "evil.example:443\r\nHost: x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseHostPort(s)
		if err != nil {
			return
		}
		if tg.Port < 1 || tg.Port > 65535 {
			t.Fatalf("ParseHostPort(%q) port %d", s, tg.Port)
		}
		if tg.IP.IsValid() == (tg.Host != "") {
			t.Fatalf("ParseHostPort(%q) = %+v: want exactly one of host and IP", s, tg)
		}
		if Escape(tg.String()) != tg.String() {
			t.Fatalf("ParseHostPort(%q) accepted unprintable target %q", s, tg.String())
		}
		tg2, err := ParseHostPort(tg.String())
		tg.Mapped = false
		if err != nil || tg2 != tg {
			t.Fatalf("ParseHostPort(%q) = %s does not round-trip: %+v %v", s, tg, tg2, err)
		}
	})
}

// TestCoversAgreesWithCheck ties the trust store's notion of a covered
// entry to the decision: whatever p allows, and at whatever exactness,
// an entry q that covers p allows too, at least as exact.
func TestCoversAgreesWithCheck(t *testing.T) {
	pats := []string{"w.example", "*.w.example", "*.a.w.example", "a.w.example", "b.a.w.example", "a.w.example:8080", "*.w.example:8080", "10.1.2.3", "10.1.2.3:22", "[2001:db8::1]:443"}
	targets := []string{"w.example", "a.w.example", "b.a.w.example", "c.b.a.w.example", "10.1.2.3", "[2001:db8::1]"}
	for _, ps := range pats {
		for _, qs := range pats {
			p, q := mustRules(t, []string{ps}, nil), mustRules(t, []string{qs}, nil)
			if !q.Allow[0].Covers(p.Allow[0]) {
				continue
			}
			for _, h := range targets {
				for _, port := range []int{443, 80, 8080, 22} {
					tg, err := ParseTarget(h, port)
					if err != nil {
						t.Fatal(err)
					}
					vp, vq := p.Check(tg), q.Check(tg)
					if vp.Allowed && (!vq.Allowed || vp.Exact && !vq.Exact) {
						t.Errorf("%q covers %q, but on %s: %+v under %q, %+v under %q", qs, ps, tg, vp, ps, vq, qs)
					}
				}
			}
		}
	}
}
