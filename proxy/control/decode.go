package control

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/fence-dev/fence/proxy"
)

// unmarshal decodes the JSON in b into v as json.Unmarshal would. decode
// reads the shapes the daemon sends on a client's way to its command (an
// open's answer, a lease's final counts) without reflection: in a fresh
// process, encoding/json's first decoding of these types costs about
// 0.1 ms each, mostly building its caches. Whatever decode does not read
// (another key, a key in other case, a null, a number that is not an int)
// goes to encoding/json, which gives the result or the error.
// TestDecodeResponse and FuzzAnswerDecode keep the two equal.
func unmarshal[T any](b []byte, v *T, decode func([]byte, *T) bool) error {
	if decode(b, v) {
		return nil
	}
	var zero T
	*v = zero
	return json.Unmarshal(b, v)
}

// decodeResponse decodes an answer without [Response.Status] into r, and
// reports whether it could.
func decodeResponse(b []byte, r *Response) bool {
	d := decoder{b: b}
	return d.object(func(key string) bool {
		switch key {
		case "error":
			return d.string(&r.Error)
		case "session":
			if r.Session == nil {
				r.Session = new(SessionInfo)
			}
			return d.session(r.Session)
		case "init":
			return d.bool(&r.Init)
		case "reason":
			return d.string(&r.Reason)
		case "initContext":
			return d.string(&r.InitContext)
		}
		return false
	}) && d.end()
}

// decodeMessage decodes a line of an event stream into m, and reports
// whether it could.
func decodeMessage(b []byte, m *Message) bool {
	d := decoder{b: b}
	return d.object(func(key string) bool {
		switch key {
		case "event":
			return d.event(&m.Event)
		case "final":
			if m.Final == nil {
				m.Final = new(SessionInfo)
			}
			return d.session(m.Final)
		}
		return false
	}) && d.end()
}

// decoder reads JSON strictly: it accepts only what encoding/json accepts,
// and decodes it as encoding/json does into the types it knows. A method
// that meets anything else reports false, and the caller gives up.
type decoder struct {
	b   []byte
	i   int    // the next byte to read
	buf []byte // a string being unescaped
}

// session decodes a [SessionInfo] into s, keeping the fields the JSON does
// not name, as encoding/json does.
func (d *decoder) session(s *SessionInfo) bool {
	return d.object(func(key string) bool {
		switch key {
		case "id":
			return d.string(&s.ID)
		case "dir":
			return d.string(&s.Dir)
		case "root":
			return d.string(&s.Root)
		case "started":
			return d.time(&s.Started)
		case "clientPid":
			return d.int(&s.Client)
		case "activeConnections":
			return d.int(&s.Active)
		case "blocked":
			return d.int(&s.Blocked)
		case "blockedHosts":
			if s.Hosts == nil {
				s.Hosts = make(map[string]int)
			}
			return d.object(func(host string) bool {
				var n int
				if !d.int(&n) {
					return false
				}
				s.Hosts[host] = n
				return true
			})
		case "configErrors":
			return d.int(&s.Errors)
		}
		return false
	})
}

// event decodes a [proxy.Event] into e.
func (d *decoder) event(e *proxy.Event) bool {
	return d.object(func(key string) bool {
		switch key {
		case "time":
			return d.time(&e.Time)
		case "session":
			return d.string(&e.Session)
		case "project":
			return d.string(&e.Project)
		case "kind":
			return d.string(&e.Kind)
		case "proto":
			return d.string(&e.Proto)
		case "target":
			return d.string(&e.Target)
		case "host":
			return d.string(&e.Host)
		case "rule":
			return d.string(&e.Rule)
		case "detail":
			return d.string(&e.Detail)
		case "fix":
			return d.string(&e.Fix)
		}
		return false
	})
}

// object reads an object, calling field for each key with the decoder at
// the key's value.
func (d *decoder) object(field func(key string) bool) bool {
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return true
	}
	for {
		var key string
		if !d.string(&key) || !d.consume(':') || !field(key) {
			return false
		}
		if d.consume('}') {
			return true
		}
		if !d.consume(',') {
			return false
		}
	}
}

// string reads a string into s, unescaped as encoding/json does: invalid
// UTF-8 and a lone surrogate escape become U+FFFD.
func (d *decoder) string(s *string) bool {
	if !d.consume('"') {
		return false
	}
	d.buf = d.buf[:0]
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			*s = string(d.buf)
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if !d.escape() {
				return false
			}
		case c < utf8.RuneSelf:
			d.buf = append(d.buf, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			d.buf = utf8.AppendRune(d.buf, r)
			d.i += size
		}
	}
	return false
}

// escape reads the escape sequence at d.i into d.buf.
func (d *decoder) escape() bool {
	if d.i+1 >= len(d.b) {
		return false
	}
	if c := d.b[d.i+1]; c != 'u' {
		const escaped, unescaped = `"\/bfnrt`, "\"\\/\b\f\n\r\t"
		i := strings.IndexByte(escaped, c)
		if i < 0 {
			return false
		}
		d.buf = append(d.buf, unescaped[i])
		d.i += 2
		return true
	}
	r := hex4(d.b[d.i:])
	if r < 0 {
		return false
	}
	d.i += 6
	if utf16.IsSurrogate(r) {
		// A pair is one rune; a surrogate without its other half is
		// U+FFFD, and what follows it is read on its own.
		r = utf16.DecodeRune(r, hex4(d.b[d.i:]))
		if r != utf8.RuneError {
			d.i += 6
		}
	}
	d.buf = utf8.AppendRune(d.buf, r)
	return true
}

// hex4 returns the code unit of the \uXXXX escape b starts with, or -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// time reads a time as [time.Time.UnmarshalJSON] does: from the string's
// bytes as they are, escapes and all.
func (d *decoder) time(t *time.Time) bool {
	d.space()
	start := d.i
	var s string
	return d.string(&s) && t.UnmarshalJSON(d.b[start:d.i]) == nil
}

// int reads an integer; a fraction or an exponent is left unread, for the
// caller to fail on.
func (d *decoder) int(n *int) bool {
	d.space()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case d.i < len(d.b) && '1' <= d.b[d.i] && d.b[d.i] <= '9':
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
		}
	default:
		return false
	}
	v, err := strconv.Atoi(string(d.b[start:d.i]))
	if err != nil {
		return false
	}
	*n = v
	return true
}

func (d *decoder) bool(v *bool) bool {
	d.space()
	switch rest := d.b[d.i:]; {
	case bytes.HasPrefix(rest, []byte("true")):
		*v, d.i = true, d.i+len("true")
	case bytes.HasPrefix(rest, []byte("false")):
		*v, d.i = false, d.i+len("false")
	default:
		return false
	}
	return true
}

// consume reads c after white space, and reports whether it was there.
func (d *decoder) consume(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (d *decoder) end() bool {
	d.space()
	return d.i == len(d.b)
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}
