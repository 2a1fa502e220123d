package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Resolver looks up the addresses of a host name. [*net.Resolver] is one;
// tests inject counting or fixed resolvers.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Decision is the outcome of deciding a [Target]: blocked, with why, or
// allowed, with the addresses that passed the address checks, in the order
// to dial them. The proxies dial exactly these addresses: a name is
// resolved once per decision, so a rebinding answer cannot slip between the
// check and the dial.
type Decision struct {
	Target  Target
	Verdict Verdict
	Blocked bool
	Reason  string // why it is blocked (the verdict's, or the address check's)
	Addrs   []netip.Addr
}

// Decide judges t under rules: the name first (deny, then allow), and only
// if that allows it, the resolved addresses. A name that is not allowed is
// never passed to res. A lookup failure is returned as an error (the
// proxies answer 502), a refusal as a blocked Decision.
func Decide(ctx context.Context, rules *Rules, res Resolver, t Target) (Decision, error) {
	d := Decision{Target: t, Verdict: rules.Check(t)}
	if !d.Verdict.Allowed {
		d.Blocked, d.Reason = true, d.Verdict.Reason
		return d, nil
	}
	var addrs []netip.Addr
	switch {
	case t.IP.IsValid():
		addrs = []netip.Addr{t.IP}
	case isLocalhostName(t.Host):
		// RFC 6761: localhost names are loopback and never go to DNS.
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	default:
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		addrs, err = res.LookupNetIP(lctx, "ip", t.Host)
		cancel()
		if err != nil {
			return d, fmt.Errorf("resolve %q: %w", t.Host, err)
		}
	}
	// Listed now, just before the dial, so that an address the host got
	// a moment ago is known as the host's.
	self, err := hostAddrs()
	if err != nil {
		return d, fmt.Errorf("list this host's addresses (to keep them out): %w", err)
	}
	var firstReason string
	for _, a := range addrs {
		ok, why := rules.CheckAddr(d.Verdict, t, a, self)
		if ok {
			d.Addrs = append(d.Addrs, a.Unmap())
		} else if firstReason == "" {
			firstReason = why
		}
	}
	if len(d.Addrs) == 0 {
		d.Blocked = true
		d.Reason = firstReason
		if d.Reason == "" {
			d.Reason = "no addresses"
		}
		// An address refusal is not fixed by editing allowedDomains.
		d.Verdict.Fix = ""
		if d.Verdict.Rule == "" {
			d.Verdict.Rule = "built-in: address check"
		}
	}
	return d, nil
}

// Dial connects to the first address of an allowed d that answers.
func (d Decision) Dial(ctx context.Context, timeout time.Duration) (net.Conn, error) {
	if d.Blocked {
		return nil, fmt.Errorf("dial %s: %w: %s", d.Target, ErrBlocked, d.Reason)
	}
	var errs []error
	dl := net.Dialer{Timeout: timeout}
	for _, a := range d.Addrs {
		c, err := dl.DialContext(ctx, "tcp", net.JoinHostPort(a.String(), strconv.Itoa(d.Target.Port)))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("dial %s: no addresses", d.Target)
	}
	return nil, errors.Join(errs...)
}
