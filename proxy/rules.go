// Package proxy decides and carries the network traffic of sandboxes: the
// domain [Pattern] matcher and [Rules], the filtering HTTP/CONNECT and SOCKS5
// servers, and the events they emit when they block something.
package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Pattern is one entry of allowedDomains or deniedDomains: an exact host, a
// "*.suffix" wildcard (subdomains only, not the apex) or an IP literal,
// optionally restricted to one port.
type Pattern struct {
	Host     string     // lower case, no trailing dot; the suffix for wildcards; empty for IPs
	Wildcard bool       // "*.example.com": any subdomain of Host
	IP       netip.Addr // valid for IP literal patterns
	Port     int        // 0: the default ports 443 and 80
}

// ErrAllowAll is returned by [ParsePattern] for "*" alone: fence has no
// switch that allows everything.
var ErrAllowAll = errors.New(`"*" alone is not allowed: fence has no allow-everything switch; list the domains, or use "*.example.com" for subdomains`)

// ParsePattern parses a domain pattern: "example.com", "*.example.com",
// "1.2.3.4", "[2001:db8::1]" or "2001:db8::1", each optionally followed by
// ":PORT" (IPv6 with a port must be bracketed).
func ParsePattern(s string) (Pattern, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return Pattern{}, errors.New("empty domain pattern")
	}
	if s == "*" || strings.HasPrefix(s, "*:") {
		return Pattern{}, ErrAllowAll
	}
	var p Pattern
	host := s
	// Bracketed IPv6, with or without port.
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Pattern{}, fmt.Errorf("domain pattern %q: missing ']'", orig)
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return Pattern{}, fmt.Errorf("domain pattern %q: unexpected %q after ']'", orig, rest)
			}
			port, err := parsePort(rest[1:])
			if err != nil {
				return Pattern{}, fmt.Errorf("domain pattern %q: %w", orig, err)
			}
			p.Port = port
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return Pattern{}, fmt.Errorf("domain pattern %q: %q is not an IPv6 address", orig, host)
		}
		p.IP = ip
		return p, nil
	}
	// Unbracketed IPv6 literal (more than one colon), no port allowed.
	if strings.Count(s, ":") > 1 {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return Pattern{}, fmt.Errorf("domain pattern %q: not a host, *.suffix or IP address (bracket IPv6 addresses that carry a port: [::1]:8080)", orig)
		}
		p.IP = ip
		return p, nil
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		port, err := parsePort(s[i+1:])
		if err != nil {
			return Pattern{}, fmt.Errorf("domain pattern %q: %w", orig, err)
		}
		p.Port = port
		host = s[:i]
	}
	// "1.2.3.4." is the address with the one trailing dot patterns ignore,
	// not a host name that happens to look like one.
	if ip, err := netip.ParseAddr(strings.TrimSuffix(host, ".")); err == nil {
		if ip.Zone() != "" {
			return Pattern{}, fmt.Errorf("domain pattern %q: zoned addresses are not allowed", orig)
		}
		p.IP = ip.Unmap()
		return p, nil
	}
	if strings.HasPrefix(host, "*.") {
		p.Wildcard = true
		host = host[2:]
	}
	name, err := CanonicalHost(host)
	if err != nil {
		return Pattern{}, fmt.Errorf("domain pattern %q: %w", orig, err)
	}
	if p.Wildcard && !strings.Contains(name, ".") {
		return Pattern{}, fmt.Errorf("domain pattern %q: a wildcard needs at least two labels after \"*.\" (\"*.com\" would allow a whole top-level domain)", orig)
	}
	p.Host = name
	return p, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || strings.HasPrefix(s, "+") || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("bad port %q: want a number from 1 to 65535", s)
	}
	return n, nil
}

// CanonicalHost lower-cases a host name, removes one trailing dot and checks
// that it is a plausible DNS name (letters, digits, '-', '_' and dots;
// labels of 1 to 63 characters; at most 253 characters).
func CanonicalHost(h string) (string, error) {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "" {
		return "", errors.New("empty host name")
	}
	if len(h) > 253 {
		return "", errors.New("host name longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("bad host name %q: empty or over-long label", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			case c == '-' && i > 0 && i < len(label)-1:
			case c == '*':
				return "", fmt.Errorf("bad host name %q: '*' is only allowed as a leading \"*.\"", h)
			default:
				return "", fmt.Errorf("bad host name %q: character %q not allowed", h, c)
			}
		}
	}
	return h, nil
}

// String returns the pattern in the form ParsePattern reads.
func (p Pattern) String() string {
	var host string
	switch {
	case p.IP.IsValid() && p.IP.Is6() && p.Port != 0:
		host = "[" + p.IP.String() + "]"
	case p.IP.IsValid():
		host = p.IP.String()
	case p.Wildcard:
		host = "*." + p.Host
	default:
		host = p.Host
	}
	if p.Port != 0 {
		host += ":" + strconv.Itoa(p.Port)
	}
	return host
}

// Matches reports whether the pattern covers host (already canonical, or an
// IP literal) and port. A pattern without a port covers 443 and 80 only.
func (p Pattern) Matches(host string, port int) bool {
	if p.Port != 0 {
		if port != p.Port {
			return false
		}
	} else if port != 443 && port != 80 {
		return false
	}
	if p.IP.IsValid() {
		ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
		return err == nil && ip.Unmap() == p.IP.Unmap()
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if p.Wildcard {
		return strings.HasSuffix(host, "."+p.Host)
	}
	return host == p.Host
}

// Exact reports whether p names its destinations exactly: a host without
// wildcard, or an IP literal. Only a name allowed by an exact entry may be
// dialed at a private address ([Verdict.Exact]).
func (p Pattern) Exact() bool { return !p.Wildcard }

// Covers reports whether p allows everything o allows: every name and
// port ([Pattern.CoversNames]), and private addresses only if p is exact
// too. The trust store uses it to tell a tightening edit from a new grant,
// so an exact entry under an allowed wildcard counts as new: it lets the
// name reach private addresses the wildcard keeps it from.
func (p Pattern) Covers(o Pattern) bool {
	return p.CoversNames(o) && (p.Exact() || !o.Exact())
}

// CoversNames reports whether p allows every name (or IP literal) and port
// o allows, setting aside which addresses they may be dialed at.
func (p Pattern) CoversNames(o Pattern) bool {
	if p.Port != o.Port && (p.Port != 0 || (o.Port != 443 && o.Port != 80)) {
		return false
	}
	if p.IP.IsValid() || o.IP.IsValid() {
		return p.IP.IsValid() && o.IP.IsValid() && p.IP.Unmap() == o.IP.Unmap()
	}
	if p.Wildcard {
		return strings.HasSuffix(o.Host, "."+p.Host) || (o.Wildcard && o.Host == p.Host)
	}
	return !o.Wildcard && o.Host == p.Host
}

// Rules is the network policy of one session: allowed and denied
// destinations. Deny wins over allow.
type Rules struct {
	Allow []Pattern
	Deny  []Pattern
	// LocalOutbound lists the host loopback ports the session may reach
	// (allowLocalOutbound). Loopback addresses are never dialed for any
	// other port, whatever Allow says.
	LocalOutbound []int `json:",omitempty"`
}
