package shellhook

import (
	"bytes"
	"io"
	"strconv"
	"unicode/utf8"
)

// Filter is a streaming filter for the output of a sandboxed terminal
// session. It passes text and ordinary control sequences through and drops
// the escape sequences that make the real terminal act on the host or answer
// on the sandbox's stdin (DESIGN.md §6.6, ATTACKS.md §T): OSC 52 (clipboard),
// OSC 7 (working directory), OSC 8 (hyperlinks), OSC 50 (font), colour and
// other OSC queries, every OSC that is not on a short allowlist (iTerm2 1337,
// ConEmu 9, notifications 777/99, kitty 5113, ...), every DCS, APC, PM and SOS
// string (DECRQSS, XTGETTCAP, tmux passthrough, kitty remote control, kitty
// graphics, sixel), window operations and reports (CSI ... t except the
// title stack 22/23), DECRQCRA and media copy.
//
// The filter behaves like the VT500 parser real terminals use: an ESC, CAN or
// SUB aborts any sequence in progress, C0 controls inside a sequence are
// executed without leaving it, and the UTF-8 encodings of the C1 introducers
// (U+0090 DCS, U+009B CSI, U+009D OSC, ...) are treated like their 7-bit
// forms. Whatever it writes is itself a sequence of well-formed allowed
// items, so a sequence split across writes, or nested in another, cannot
// reach the terminal. Sequences longer than the internal limits are dropped.
type Filter struct {
	w io.Writer
	// OnBlock, when set, is called with a short name ("OSC 52", "DCS",
	// "CSI 21 t") for every sequence the filter drops.
	OnBlock func(what string)

	state  fstate
	seq    []byte // the sequence being collected (starts with ESC)
	over   bool   // seq exceeded its limit: drop on completion
	strWhy string // name of the string being swallowed
	st     bool   // the OSC being collected ended with ESC \ rather than BEL
	out    []byte
	term   termState // what the stream left switched on (modes.go)
}

type fstate uint8

const (
	sGround   fstate = iota
	sGroundC2        // saw 0xC2 in ground: maybe a UTF-8 encoded C1 control
	sEsc             // saw ESC
	sEscInter        // ESC followed by intermediates
	sCSI
	sOSC
	sOSCEsc // ESC inside an OSC string
	sOSCC2  // 0xC2 inside an OSC string
	sStr    // swallowing a DCS/APC/PM/SOS string
	sStrEsc
	sStrC2
)

const (
	maxCSI = 64
	maxOSC = 16 << 10
)

// NewFilter returns a Filter writing the filtered stream to w.
func NewFilter(w io.Writer) *Filter { return &Filter{w: w} }

// Write filters p and writes what passes to the underlying writer. It
// always consumes all of p unless the underlying writer fails.
func (f *Filter) Write(p []byte) (int, error) {
	if f.state == sGround && nextSpecial(p) == len(p) {
		// Plain text (the bulk of any output): no copy.
		if _, err := f.w.Write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	f.out = f.out[:0]
	f.feed(p)
	if len(f.out) > 0 {
		if _, err := f.w.Write(f.out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush drops any incomplete sequence at the end of the stream. A lone
// trailing 0xC2 byte is written as U+FFFD, as a terminal would show it:
// written as it is, a C1 byte written next to the same terminal by another
// stream (the command's stderr has a filter of its own) would make it a
// control neither filter saw.
func (f *Filter) Flush() error {
	out := f.out[:0]
	if f.state == sGroundC2 {
		out = append(out, "\ufffd"...)
	}
	f.state, f.seq, f.over = sGround, f.seq[:0], false
	f.out = out
	if len(out) > 0 {
		_, err := f.w.Write(out)
		return err
	}
	return nil
}

func (f *Filter) block(what string) {
	if f.OnBlock != nil {
		f.OnBlock(what)
	}
}

// begin starts collecting a sequence introduced by ESC c (c is '[' or ']').
func (f *Filter) begin(st fstate, intro byte) {
	f.state = st
	f.seq = append(f.seq[:0], 0x1b, intro)
	f.over = false
}

// swallow starts dropping a DCS/APC/PM/SOS string.
func (f *Filter) swallow(what string) {
	f.state = sStr
	f.strWhy = what
	f.block(what)
}

func strName(c byte) string {
	switch c {
	case 'P', 0x90:
		return "DCS"
	case 'X', 0x98:
		return "SOS"
	case '^', 0x9e:
		return "PM"
	default:
		return "APC"
	}
}

func (f *Filter) feed(p []byte) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch f.state {
		case sGround:
			// Fast path: copy the run up to the next byte of interest.
			j := nextSpecial(p[i:]) + i
			f.out = append(f.out, p[i:j]...)
			if j == len(p) {
				return
			}
			i = j
			switch p[i] {
			case 0x1b:
				f.state = sEsc
			case 0xc2:
				f.state = sGroundC2
			default: // SO: G1 shifted in
				f.term.charsets = true
				f.out = append(f.out, p[i])
			}

		case sGroundC2:
			f.state = sGround
			switch {
			case c == 0x90 || c == 0x98 || c == 0x9e || c == 0x9f:
				f.swallow(strName(c))
			case c == 0x9d:
				f.begin(sOSC, ']')
			case c == 0x9b:
				f.begin(sCSI, '[')
			case c == 0x9c:
				// A stray ST: nothing to terminate.
			case c >= 0x80 && c <= 0xbf:
				f.out = append(f.out, 0xc2, c)
			default:
				// 0xC2 not followed by a continuation byte is not UTF-8;
				// show what a terminal would (U+FFFD) rather than a lone
				// 0xC2, which a C1 byte later in the output could turn into
				// a control the filter never saw.
				f.out = append(f.out, "\ufffd"...)
				i-- // reprocess c in ground
			}

		case sEsc:
			switch {
			case c == '[':
				f.begin(sCSI, '[')
			case c == ']':
				f.begin(sOSC, ']')
			case c == 'P' || c == 'X' || c == '^' || c == '_':
				f.swallow(strName(c))
			case c >= 0x20 && c <= 0x2f:
				f.state = sEscInter
				f.seq = append(f.seq[:0], 0x1b, c)
				f.over = false
			case c == 0x1b:
				// ESC ESC: the first one is cancelled.
			case c == 0x18 || c == 0x1a:
				f.state = sGround
			case c < 0x20:
				f.executeC0(c) // the escape continues
			case c == 0x7f:
				// ignored, as terminals do
			case c == '\\':
				// A stray ST terminates nothing.
				f.state = sGround
			case c >= 0x80:
				f.state = sGround
				i--
			default:
				f.out = append(f.out, 0x1b, c)
				f.state = sGround
				f.term.trackEsc([]byte{0x1b}, c)
			}

		case sEscInter:
			switch {
			case c >= 0x20 && c <= 0x2f:
				if len(f.seq) < 16 {
					f.seq = append(f.seq, c)
				} else {
					f.over = true
				}
			case c >= 0x30 && c <= 0x7e:
				f.state = sGround
				if f.over {
					break
				}
				if why := escBlocked(f.seq[1:], c); why != "" {
					f.block(why)
					break
				}
				f.out = append(f.out, f.seq...)
				f.out = append(f.out, c)
				f.term.trackEsc(f.seq, c)
			default:
				f.abort(c, &i)
			}

		case sCSI:
			switch {
			case c >= 0x20 && c <= 0x3f:
				if len(f.seq) < maxCSI {
					f.seq = append(f.seq, c)
				} else {
					f.over = true
				}
			case c >= 0x40 && c <= 0x7e:
				f.state = sGround
				if f.over {
					f.block("CSI (too long)")
					break
				}
				if why := csiBlocked(f.seq[2:], c); why != "" {
					f.block(why)
					break
				}
				f.out = append(f.out, f.seq...)
				f.out = append(f.out, c)
				f.term.trackCSI(f.seq[2:], c)
			default:
				f.abort(c, &i)
			}

		case sOSC:
			switch {
			case c == 0x07:
				f.st = false
				f.endOSC()
			case c == 0x1b:
				f.state = sOSCEsc
			case c == 0x18 || c == 0x1a:
				f.state = sGround
				f.block("OSC (cancelled)")
			case c < 0x20:
				// C0 inside an OSC string is ignored by terminals.
			case c == 0xc2:
				f.state = sOSCC2
			default:
				if len(f.seq) < maxOSC {
					f.seq = append(f.seq, c)
				} else {
					f.over = true
				}
			}

		case sOSCEsc:
			// ESC ends the string whatever follows; ESC \ is the proper ST.
			f.st = true
			f.endOSC()
			if c != '\\' {
				f.state = sEsc
				i--
			}

		case sOSCC2:
			switch {
			case c == 0x9c: // ST
				f.st = true
				f.endOSC()
			case c >= 0x80 && c <= 0x9f:
				f.state = sGround
				f.block("OSC (C1 inside)")
				i-- // the C1 control starts over in ground as C2 xx
				f.state = sGroundC2
			case c >= 0xa0 && c <= 0xbf:
				f.state = sOSC
				if len(f.seq)+2 <= maxOSC {
					f.seq = append(f.seq, 0xc2, c)
				} else {
					f.over = true
				}
			default:
				// Not UTF-8: kept as U+FFFD, as a terminal shows it. Kept
				// as 0xC2, it would meet the byte after a C0 control the
				// string drops, and be a C1 control in the output.
				f.state = sOSC
				if len(f.seq)+3 <= maxOSC {
					f.seq = append(f.seq, "\ufffd"...)
				} else {
					f.over = true
				}
				i--
			}

		case sStr:
			switch c {
			case 0x1b:
				f.state = sStrEsc
			case 0x18, 0x1a:
				f.state = sGround
			case 0xc2:
				f.state = sStrC2
			}

		case sStrEsc:
			f.state = sGround
			if c != '\\' {
				f.state = sEsc
				i--
			}

		case sStrC2:
			switch {
			case c == 0x9c:
				f.state = sGround
			case c >= 0x80 && c <= 0x9f:
				// Another C1 control ends the string as ESC would.
				f.state = sGroundC2
				i--
			default:
				f.state = sStr
				i--
			}
		}
	}
}

// abort handles a byte that cannot continue an escape or CSI sequence:
// ESC restarts, CAN/SUB cancel, other C0 controls are executed in place,
// DEL is ignored, and anything else cancels the sequence and is reprocessed.
func (f *Filter) abort(c byte, i *int) {
	switch {
	case c == 0x1b:
		f.state = sEsc
	case c == 0x18 || c == 0x1a:
		f.state = sGround
	case c < 0x20:
		f.executeC0(c)
	case c == 0x7f:
	default:
		f.state = sGround
		*i--
	}
}

// executeC0 passes a C0 control met inside an escape sequence, which the
// terminal executes without leaving the sequence. SO is followed there as
// in text (review of the eleventh session: ESC SO shifted G1 in unseen).
func (f *Filter) executeC0(c byte) {
	if c == 0x0e {
		f.term.charsets = true
	}
	f.out = append(f.out, c)
}

// endOSC decides on the collected OSC string and returns to ground.
func (f *Filter) endOSC() {
	f.state = sGround
	payload := f.seq[2:]
	if f.over {
		f.block("OSC (too long)")
		return
	}
	if why := oscBlocked(payload); why != "" {
		f.block(why)
		return
	}
	f.term.trackOSC(oscNumber(payload))
	f.out = append(f.out, f.seq...)
	if f.st {
		f.out = append(f.out, 0x1b, '\\')
	} else {
		f.out = append(f.out, 0x07)
	}
}

// oscNumber returns the number an OSC string payload starts with, or -1.
func oscNumber(payload []byte) int {
	num, _, _ := bytes.Cut(payload, []byte{';'})
	n, err := strconv.Atoi(string(num))
	if err != nil || len(num) == 0 || len(num) > 5 || num[0] < '0' || num[0] > '9' {
		return -1
	}
	return n
}

// oscBlocked returns why the OSC string payload must be dropped, or "".
func oscBlocked(payload []byte) string {
	n := oscNumber(payload)
	if n < 0 {
		return "OSC (malformed)"
	}
	if !utf8.Valid(payload) {
		// A raw C1 byte (0x9C, ST) ends the string early on a terminal
		// that reads 8-bit controls, and what follows it is then a new
		// sequence this filter saw as part of the title.
		return "OSC (not UTF-8)"
	}
	_, rest, _ := bytes.Cut(payload, []byte{';'})
	name := "OSC " + strconv.Itoa(n)
	hasQuery := func(b []byte) bool {
		for _, f := range bytes.Split(b, []byte{';'}) {
			if bytes.Equal(f, []byte{'?'}) {
				return true
			}
		}
		return false
	}
	switch {
	case n <= 2: // icon name and window title
		if hasQuery(rest) {
			return name + " query"
		}
		return ""
	case n == 4 || (n >= 10 && n <= 19): // colours
		if hasQuery(rest) {
			return name + " query"
		}
		return ""
	case n == 104 || n == 105 || (n >= 110 && n <= 119): // colour resets
		return ""
	case n == 133: // FinalTerm prompt marks (shell integration)
		return ""
	case n == 633: // VS Code shell integration
		// The cwd property is dropped like OSC 7: it tells the editor
		// where to open new terminals (ATTACKS.md T-10). VS Code decodes
		// \xNN and \\ in the property before it reads its name, so
		// P;\x43wd= names it too.
		if prop, ok := bytes.CutPrefix(rest, []byte("P;")); ok {
			key, _, _ := bytes.Cut(prop, []byte{'='})
			if bytes.EqualFold(vscodeUnescape(key), []byte("Cwd")) {
				return "OSC 633 P;Cwd"
			}
		}
		return ""
	}
	return name
}

// vscodeUnescape decodes the escapes VS Code's shell integration reads in
// OSC 633 values: \\ and \xNN.
func vscodeUnescape(b []byte) []byte {
	if bytes.IndexByte(b, '\\') < 0 {
		return b
	}
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) && b[i+1] == '\\' {
			out = append(out, '\\')
			i++
			continue
		}
		if b[i] == '\\' && i+3 < len(b) && (b[i+1] == 'x' || b[i+1] == 'X') {
			if v, err := strconv.ParseUint(string(b[i+2:i+4]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return out
}

// escBlocked returns why the escape sequence with intermediates inter
// and final byte final must be dropped, or "".
func escBlocked(inter []byte, final byte) string {
	switch {
	case len(inter) == 1 && inter[0] == '%' && final != 'G':
		// Leaves UTF-8: raw C1 bytes in later text would then be
		// controls (ESC % G, into UTF-8, is harmless).
		return "ESC % (leave UTF-8)"
	case len(inter) == 1 && inter[0] == ' ' && final == 'G':
		// S8C1T: reports come back with 8-bit controls.
		return "ESC SP G (S8C1T)"
	}
	return ""
}

// csiBlocked returns why the CSI sequence with parameter bytes params and
// final byte final must be dropped, or "".
func csiBlocked(params []byte, final byte) string {
	switch final {
	case 't':
		// Window operations act on the host's window (move, resize,
		// iconify) or report the title into the sandbox's input. Only
		// the title stack (22, 23) is harmless and used by editors.
		first, _, _ := bytes.Cut(params, []byte{';'})
		if bytes.Equal(first, []byte("22")) || bytes.Equal(first, []byte("23")) {
			return ""
		}
		if len(first) == 0 {
			first = []byte("0")
		}
		return "CSI " + string(first) + " t"
	case 'y':
		if bytes.HasSuffix(params, []byte("*")) {
			return "DECRQCRA"
		}
	case 'i':
		return "CSI i (media copy)"
	case 'q':
		if bytes.HasPrefix(params, []byte(">")) {
			// Answers with the terminal's name and version as text.
			return "XTVERSION"
		}
	case 'u', 'w':
		// DECRQTSR, DECRQPSR, DECRQUPSS: reports as text strings, not
		// numbers.
		if bytes.HasSuffix(params, []byte("$")) || bytes.HasSuffix(params, []byte("&")) {
			return "CSI " + string(params) + string(final) + " (report)"
		}
	case 'c':
		if bytes.HasPrefix(params, []byte("=")) {
			return "DA3" // answers with a DCS string
		}
	}
	return ""
}

// nextSpecial returns the index of the first ESC or 0xC2 byte in p (the
// start of an escape sequence or of a UTF-8 encoded C1 control), or of an
// SO (shift out, which modes.go follows), or len(p).
func nextSpecial(p []byte) int {
	n := len(p)
	if i := bytes.IndexByte(p, 0x1b); i >= 0 {
		n = i
	}
	if i := bytes.IndexByte(p[:n], 0xc2); i >= 0 {
		n = i
	}
	if i := bytes.IndexByte(p[:n], 0x0e); i >= 0 {
		n = i
	}
	return n
}
