package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Target is one requested destination: a canonical host name or an IP
// literal, and a port. It is what every decision is made on; the proxies
// build it from the CONNECT authority, the absolute URI or the SOCKS
// request, never from a Host header.
type Target struct {
	Host string     // canonical name (lower case, no trailing dot); "" for IP literals
	IP   netip.Addr // the IP literal, unmapped; invalid for names
	Port int
	// Mapped records that the literal was written as an IPv4-mapped IPv6
	// address ([::ffff:127.0.0.1]): it is judged as the IPv4 address, but
	// never counts as the host loopback of allowLocalOutbound.
	Mapped bool
}

// ParseTarget builds a Target from a host (a name, an IPv4 literal, or an
// IPv6 literal with or without brackets) and a port. Names are checked and
// canonicalised with [CanonicalHost]; IPv4-mapped IPv6 literals are unmapped
// so that they are judged as the IPv4 address they are. A name whose last
// label is numeric ("127.1", "2130706433", "0x7f000001" is not, but "1.2.3"
// is) is refused: resolvers read such names as IPv4 addresses in legacy forms.
func ParseTarget(host string, port int) (Target, error) {
	if port < 1 || port > 65535 {
		return Target{}, fmt.Errorf("bad port %d", port)
	}
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
		ip, err := netip.ParseAddr(h)
		if err != nil || !ip.Is6() {
			return Target{}, fmt.Errorf("bad IPv6 literal %q", host)
		}
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return Target{}, fmt.Errorf("zoned address %q not allowed", host)
		}
		return Target{IP: ip.Unmap(), Port: port, Mapped: ip.Is4In6()}, nil
	}
	name, err := CanonicalHost(h)
	if err != nil {
		return Target{}, err
	}
	labels := strings.Split(name, ".")
	last := labels[len(labels)-1]
	if isNumericLabel(last) {
		return Target{}, fmt.Errorf("bad host name %q: looks like an IPv4 address in a legacy form", name)
	}
	return Target{Host: name, Port: port}, nil
}

// isNumericLabel reports whether l is a decimal or 0x-hex number, the forms
// inet_aton accepts as IPv4 parts.
func isNumericLabel(l string) bool {
	if l == "" {
		return false
	}
	if strings.HasPrefix(l, "0x") {
		l = l[2:]
		if l == "" {
			return true
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

// ParseHostPort parses an authority "host:port" (IPv6 bracketed), as found
// in a CONNECT request line. The port is mandatory and strict: decimal,
// 1 to 65535, no sign, no leading zero.
func ParseHostPort(hp string) (Target, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return Target{}, fmt.Errorf("bad authority %q: want host:port", hp)
	}
	port, err := parsePort(ps)
	if err != nil {
		return Target{}, err
	}
	if strings.Contains(hp, "[") {
		host = "[" + host + "]"
	}
	return ParseTarget(host, port)
}

// String returns the target as host:port.
func (t Target) String() string {
	if t.IP.IsValid() {
		return net.JoinHostPort(t.IP.String(), strconv.Itoa(t.Port))
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// Name returns the host part: the name, or the IP literal.
func (t Target) Name() string {
	if t.IP.IsValid() {
		return t.IP.String()
	}
	return t.Host
}

// Verdict is the decision on a [Target]'s requested name, before any
// resolution.
type Verdict struct {
	Allowed bool
	// Exact reports whether the entry that allowed the target names it
	// exactly ([Pattern.Exact]): only then may a private address be
	// dialed.
	Exact bool
	// Local reports a host loopback port of allowLocalOutbound: its
	// tunnels carry whatever the port speaks (no TLS server-name check:
	// the destination is the host's port whatever name the client sends,
	// a dev server's mkcert name say; second red team round).
	Local bool
	// Rule is the config entry that decided, as written in the config
	// ("deniedDomains: telemetry.example.com"); empty when no entry matched.
	Rule string
	// Reason says why, in words fit for a log line or a 403 body.
	Reason string
	// Fix says what the user can change to allow the target; empty when
	// nothing in the config can (built-in blocks).
	Fix string
}

// builtinDenied are names that reach cloud metadata services; they are
// refused whatever the allow list says (their addresses are refused too,
// see [Classify], but the name is refused before any lookup).
var builtinDenied = []string{
	"metadata", "metadata.google.internal", "metadata.goog",
	"instance-data", "instance-data.ec2.internal", "metadata.azure.internal",
}

// Check decides on the requested name of t: deny entries first, then allow
// entries. A target that is not allowed here must never be resolved.
func (r *Rules) Check(t Target) Verdict {
	if t.Port < 1 || t.Port > 65535 || (!t.IP.IsValid() && t.Host == "") {
		return Verdict{Reason: "invalid destination"}
	}
	if t.Host != "" && slices.Contains(builtinDenied, t.Host) {
		return Verdict{Rule: "built-in: cloud metadata", Reason: "cloud metadata names are always blocked"}
	}
	for _, p := range r.Deny {
		if p.matchHost(t) && (p.Port == 0 || p.Port == t.Port) {
			return Verdict{Rule: "deniedDomains: " + p.String(), Reason: fmt.Sprintf("denied by deniedDomains entry %q", p.String()),
				Fix: "deny wins over allow; remove the entry from deniedDomains if it is yours"}
		}
	}
	// A loopback literal in the IPv4-mapped form is never dialed (see
	// [Target.Mapped]): say so, not "not in allowedDomains".
	if t.Mapped && t.IP.IsLoopback() {
		v := Verdict{Rule: "built-in: address check",
			Reason: fmt.Sprintf("[::ffff:%s] is the IPv4-mapped form of a loopback address; the host's loopback is reached only as 127.0.0.1 or ::1, on allowLocalOutbound ports", t.IP)}
		if r.localPort(t.Port) && isLocalAddr(t.IP) {
			v.Fix = fmt.Sprintf("request %s instead", net.JoinHostPort(t.IP.String(), strconv.Itoa(t.Port)))
		}
		return v
	}
	// Host loopback ports listed in allowLocalOutbound, by loopback literal
	// or by the name localhost (which fence never sends to DNS).
	if r.localPort(t.Port) && (isLocalAddr(t.IP) && !t.Mapped || isLocalhostName(t.Host)) {
		return Verdict{Allowed: true, Exact: true, Local: true, Rule: "allowLocalOutbound: " + strconv.Itoa(t.Port), Reason: "allowed by allowLocalOutbound"}
	}
	var wild *Pattern
	for i, p := range r.Allow {
		if !p.matchHost(t) || !p.portOK(t.Port) {
			continue
		}
		if p.Exact() {
			return Verdict{Allowed: true, Exact: true, Rule: "allowedDomains: " + p.String(), Reason: "allowed"}
		}
		if wild == nil {
			wild = &r.Allow[i]
		}
	}
	if wild != nil {
		return Verdict{Allowed: true, Rule: "allowedDomains: " + wild.String(), Reason: "allowed"}
	}
	// Say whether the host is listed for other ports: the fix differs.
	for _, p := range r.Allow {
		if p.matchHost(t) {
			return Verdict{Reason: fmt.Sprintf("port %d not allowed: entry %q allows %s", t.Port, p.String(), p.portsString()),
				Fix: fmt.Sprintf("add %q to allowedDomains in .fence.toml [network]", Pattern{Host: p.Host, Wildcard: p.Wildcard, IP: p.IP, Port: t.Port}.String())}
		}
	}
	return Verdict{Reason: "not in allowedDomains", Fix: "add it to .fence.toml [network]"}
}

// CheckAddr decides on one resolved address of t after [Rules.Check]
// allowed the name with verdict v; self lists the addresses of the host's
// own interfaces ([HostAddrs]). It reports whether the address may be
// dialed and, if not, why.
func (r *Rules) CheckAddr(v Verdict, t Target, a netip.Addr, self []netip.Addr) (bool, string) {
	if !v.Allowed {
		return false, v.Reason
	}
	a = a.Unmap()
	if a.Zone() != "" {
		return false, "zoned address"
	}
	for _, p := range r.Deny {
		if p.IP.IsValid() && p.IP.Unmap() == a && (p.Port == 0 || p.Port == t.Port) {
			return false, fmt.Sprintf("address %s denied by deniedDomains entry %q", a, p.String())
		}
	}
	class, what := Classify(a)
	// The host's own LAN or global address reaches what listens on all
	// its interfaces, as loopback does: the same port rule applies.
	if (class == ClassPublic || class == ClassPrivate) && slices.Contains(self, a) && !(r.localPort(t.Port) && !t.Mapped) {
		return false, fmt.Sprintf("resolves to an address of this host (%s); host ports need allowLocalOutbound", a)
	}
	switch class {
	case ClassPublic:
		return true, ""
	case ClassPrivate:
		if v.Exact {
			return true, ""
		}
		return false, fmt.Sprintf("resolves to a private address (%s, %s); private addresses need an exact allowedDomains entry, not a wildcard", a, what)
	case ClassLoopback:
		if r.localPort(t.Port) && isLocalAddr(a) && !t.Mapped {
			return true, ""
		}
		return false, fmt.Sprintf("resolves to a loopback address (%s); host loopback ports need allowLocalOutbound", a)
	}
	return false, fmt.Sprintf("resolves to a %s address (%s), never dialed", what, a)
}

func (r *Rules) localPort(port int) bool { return slices.Contains(r.LocalOutbound, port) }

// hostAddrs is [HostAddrs]; tests replace it with a fixed list.
var hostAddrs = HostAddrs

// HostAddrs lists the addresses assigned to the host's network interfaces,
// unmapped and without zone. [Decide] asks for them on every decision
// rather than caching them: addresses change (a laptop's DHCP lease, a VPN
// coming up), a cached list would let a new address through until it
// expired, and the list costs one netlink dump (some 15 µs with a few
// interfaces), next to a DNS lookup and a TCP handshake.
func HostAddrs() ([]netip.Addr, error) {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(ifas))
	for _, ifa := range ifas {
		var ip net.IP
		switch v := ifa.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	return out, nil
}

// isLocalAddr reports whether a is one of the two addresses
// allowLocalOutbound opens ports on: 127.0.0.1 and ::1 (not the rest of
// 127.0.0.0/8, where other services may listen).
func isLocalAddr(a netip.Addr) bool {
	return a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || a == netip.IPv6Loopback()
}

func isLocalhostName(h string) bool { return h == "localhost" || strings.HasSuffix(h, ".localhost") }

// matchHost reports whether p names t's host, ignoring ports. Name entries
// match only names and IP entries only IP literals: an IP literal of an
// allowed name is not allowed.
func (p Pattern) matchHost(t Target) bool {
	if p.IP.IsValid() {
		return t.IP.IsValid() && p.IP.Unmap() == t.IP
	}
	if t.Host == "" {
		return false
	}
	if p.Wildcard {
		return strings.HasSuffix(t.Host, "."+p.Host)
	}
	return t.Host == p.Host
}

func (p Pattern) portOK(port int) bool {
	if p.Port != 0 {
		return port == p.Port
	}
	return port == 443 || port == 80
}

func (p Pattern) portsString() string {
	if p.Port != 0 {
		return "port " + strconv.Itoa(p.Port)
	}
	return "ports 443 and 80"
}

// AddrClass is the class of an IP address for dialing decisions.
type AddrClass int

// The address classes, from most to least dialable.
const (
	ClassPublic   AddrClass = iota // globally routable: dialed when the name is allowed
	ClassPrivate                   // RFC 1918, CGNAT, ULA...: only for exact entries
	ClassLoopback                  // only for allowLocalOutbound ports
	ClassBlocked                   // link-local, metadata, multicast, unspecified...: never
)

var (
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("169.254.170.2"),
		netip.MustParseAddr("100.100.100.200"), netip.MustParseAddr("192.0.0.192"),
		netip.MustParseAddr("fd00:ec2::254"), netip.MustParseAddr("fd00:ec2::23"),
	}
	v4Blocked = []struct {
		p    netip.Prefix
		what string
	}{
		{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
		{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
		{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
		{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	}
	v4Private = []struct {
		p    netip.Prefix
		what string
	}{
		{netip.MustParsePrefix("10.0.0.0/8"), "RFC 1918"},
		{netip.MustParsePrefix("172.16.0.0/12"), "RFC 1918"},
		{netip.MustParsePrefix("192.168.0.0/16"), "RFC 1918"},
		{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT"},
		{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
		// Never routed on the Internet (RFC 5737): where one answers, it
		// is someone's own network using it as private space.
		{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
		{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
		{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	}
	nat64WKP   = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	teredo     = netip.MustParsePrefix("2001::/32")
	v4compat   = netip.MustParsePrefix("::/96")
	discard6   = netip.MustParsePrefix("100::/64")
	siteLocal  = netip.MustParsePrefix("fec0::/10")
	ula        = netip.MustParsePrefix("fc00::/7")
	// The IPv6 documentation prefixes (RFC 3849, RFC 9637), private for
	// the same reason as their IPv4 counterparts.
	doc6    = netip.MustParsePrefix("2001:db8::/32")
	doc6New = netip.MustParsePrefix("3fff::/20")
)

// Classify returns the class of a and a short description of why. IPv4
// addresses embedded in IPv6 (mapped, NAT64, 6to4) are judged as the IPv4
// address they carry; Teredo and the deprecated IPv4-compatible form are
// blocked outright.
func Classify(a netip.Addr) (AddrClass, string) {
	a = a.Unmap()
	if !a.IsValid() {
		return ClassBlocked, "invalid"
	}
	if slices.Contains(metadataAddrs, a.WithZone("")) {
		return ClassBlocked, "cloud metadata"
	}
	if a.Is4() {
		if a.IsLoopback() {
			return ClassLoopback, "loopback"
		}
		if a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return ClassBlocked, "broadcast"
		}
		for _, b := range v4Blocked {
			if b.p.Contains(a) {
				return ClassBlocked, b.what
			}
		}
		for _, b := range v4Private {
			if b.p.Contains(a) {
				return ClassPrivate, b.what
			}
		}
		return ClassPublic, "public"
	}
	b := a.As16()
	switch {
	case a.IsUnspecified():
		return ClassBlocked, "unspecified"
	case a.IsLoopback():
		return ClassLoopback, "loopback"
	case a.IsMulticast():
		return ClassBlocked, "multicast"
	case a.IsLinkLocalUnicast():
		return ClassBlocked, "link-local"
	case nat64WKP.Contains(a) || nat64Local.Contains(a):
		return embedded(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), "NAT64")
	case sixToFour.Contains(a):
		return embedded(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), "6to4")
	case teredo.Contains(a):
		return ClassBlocked, "Teredo"
	case v4compat.Contains(a):
		return ClassBlocked, "IPv4-compatible"
	case discard6.Contains(a):
		return ClassBlocked, "discard-only"
	case siteLocal.Contains(a):
		return ClassPrivate, "site-local"
	case ula.Contains(a):
		return ClassPrivate, "ULA"
	case doc6.Contains(a) || doc6New.Contains(a):
		return ClassPrivate, "documentation"
	}
	return ClassPublic, "public"
}

func embedded(v4 netip.Addr, form string) (AddrClass, string) {
	c, what := Classify(v4)
	if c == ClassPublic {
		return ClassPublic, form + " of a public address"
	}
	// An embedded private or loopback address is never dialed through a
	// translator: the exceptions for exact entries and local ports name
	// the plain address, not its translated forms.
	return ClassBlocked, form + " form of a " + what + " address"
}

// ErrBlocked is wrapped by the errors of [Dialer] for destinations the
// policy refuses.
var ErrBlocked = errors.New("blocked by policy")
