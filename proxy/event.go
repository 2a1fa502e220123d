package proxy

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Event kinds.
const (
	KindBlocked     = "blocked"      // a request refused by policy
	KindPolicy      = "policy"       // a session's rules changed (live reload)
	KindConfigError = "config-error" // a config edit could not be applied
	KindPending     = "pending"      // a loosening edit waits for `fence allow`
)

// Event is something a session's network side reports: a blocked request,
// a rule change or a config error. Target and Detail may carry strings the
// sandbox chose; print them with [Event.Line] or [Escape], never raw.
type Event struct {
	Time    time.Time `json:"time"`
	Session string    `json:"session"`
	Project string    `json:"project"`
	Kind    string    `json:"kind"`
	Proto   string    `json:"proto,omitempty"`  // CONNECT, HTTP or SOCKS for blocked requests
	Target  string    `json:"target,omitempty"` // host:port as requested
	Host    string    `json:"host,omitempty"`   // the host part of Target
	Rule    string    `json:"rule,omitempty"`   // the config entry that decided
	Detail  string    `json:"detail,omitempty"` // why, in words
	Fix     string    `json:"fix,omitempty"`    // what the user can change
}

// Line returns the event as one human line without the "[fence:net]"
// prefix, with every attacker-controlled string escaped.
func (e Event) Line() string {
	switch e.Kind {
	case KindBlocked:
		s := fmt.Sprintf("blocked %s %s (%s", e.Proto, Escape(e.Target), Escape(e.Detail))
		if e.Fix != "" {
			s += "; " + Escape(e.Fix)
		}
		return s + ")"
	default:
		return fmt.Sprintf("%s: %s", e.Kind, Escape(e.Detail))
	}
}

// Escape makes s safe to print on a terminal: control characters, invalid
// UTF-8, and Unicode format characters (bidi overrides, zero-width) are
// written as Go escapes, so nothing in s can move the cursor, change colors,
// reach the clipboard or reorder the line.
func Escape(s string) string {
	safe := true
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || r == '\\' || (r >= 0x80 && !unicode.IsPrint(r)) || unicode.Is(unicode.Cf, r) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && (!unicode.IsPrint(r) || unicode.Is(unicode.Cf, r)):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}
