package shellhook

import (
	"bytes"
	"strconv"
)

// What a sandboxed program leaves switched on in the terminal outlives it:
// the user's own shell, afterwards, would draw in a scroll region two lines
// high, in line-drawing characters, with local echo on (a password typed
// next shown on screen), LF sent for Enter, the keyboard locked, or text
// in the background colour. The filter follows every sequence that
// changes such a state and, at the end of a session, undoes what is still
// on (DESIGN.md §6.6, red team of the eleventh session).

// modeReset is a mode and the value it goes back to.
type modeReset struct {
	mode int
	on   bool
}

// decModes are the DEC private modes (CSI ? N h/l) a session may leave on
// that would disturb the user's own shell afterwards, in the order they
// are undone.
var decModes = []modeReset{
	{1049, false}, {1047, false}, {47, false}, // alternate screen
	{9, false}, {1000, false}, {1001, false}, {1002, false}, {1003, false}, {1005, false}, {1006, false}, {1015, false}, // mouse
	{1004, false}, // focus events
	{1, false},    // application cursor keys
	{66, false},   // application keypad (DECNKM)
	{25, true},    // cursor visible
	{5, false},    // reverse video
	{7, true},     // autowrap
	{8, true},     // key autorepeat
	{69, false},   // left and right margins
	{2026, false}, // synchronized output
}

// ansiModes are the ANSI modes (CSI N h/l) of the same kind.
var ansiModes = []modeReset{
	{2, false},  // keyboard locked (KAM)
	{4, false},  // insert mode (IRM)
	{12, true},  // local echo off (SRM): reset, the terminal echoes what is typed
	{20, false}, // LF also moves to the first column, and Enter sends CR LF (LNM)
}

// termState is what the filtered stream switched on and not off again.
type termState struct {
	dec, ansi map[int]bool // modes the stream set (true) or reset
	kitty     int          // kitty keyboard protocol levels pushed and not popped
	kittyBase bool         // kitty keyboard flags set on the entry below them (CSI = u)
	mok       bool         // xterm modifyOtherKeys left on
	keypad    bool         // application keypad (DECKPAM, ESC =)
	charsets  bool         // a character set designated or shifted in (ESC ( 0, SO)
	margins   bool         // a scroll region set (DECSTBM)
	origin    bool         // origin mode set at some point (DECOM; DECRC can bring it back)
	cursor    bool         // a cursor style set (DECSCUSR)
	colours   uint32       // bit N: OSC N set a colour (4, 10-19)
}

// trackCSI follows a CSI sequence the filter passed: params are its
// parameter and intermediate bytes, final its final byte.
func (s *termState) trackCSI(params []byte, final byte) {
	private := len(params) > 0 && params[0] == '?'
	switch {
	case (final == 'h' || final == 'l') && private:
		for _, n := range modeNumbers(params[1:]) {
			s.dec = setMode(s.dec, n, final == 'h')
			s.origin = s.origin || (n == 6 && final == 'h')
		}
	case (final == 'h' || final == 'l') && len(params) > 0 && params[0] >= '0' && params[0] <= '9':
		for _, n := range modeNumbers(params) {
			s.ansi = setMode(s.ansi, n, final == 'h')
		}
	case final == 'r' && private:
		// XTRESTORE: modes saved earlier (CSI ? N s) come back, maybe
		// on; the filter did not keep what was saved, so they are undone
		// whatever they were.
		for _, n := range modeNumbers(params[1:]) {
			for _, r := range decModes {
				if r.mode == n {
					s.dec = setMode(s.dec, n, !r.on)
				}
			}
		}
	case final == 'Q' && string(params) == "#":
		// XTPOPCOLORS: colours pushed earlier come back.
		s.colours |= 1<<4 | 0x3ff<<10
	case final == 'r' && !private:
		// DECSTBM; with no parameters (or 1 and the last line, which
		// this does not bother to tell apart) the whole screen.
		s.margins = len(params) > 0
	case final == 'q' && bytes.HasSuffix(params, []byte(" ")):
		p := bytes.TrimSuffix(params, []byte(" "))
		s.cursor = len(p) > 0 && string(p) != "0"
	case final == 'u' && len(params) > 0 && params[0] == '>':
		s.kitty = min(s.kitty+1, 64)
	case final == 'u' && len(params) > 0 && params[0] == '<':
		n := 1
		if v, err := strconv.Atoi(string(params[1:])); err == nil && v > 0 {
			n = v
		}
		s.kitty = max(s.kitty-n, 0)
	case final == 'u' && len(params) > 0 && params[0] == '=':
		// Flags set on the entry on top of the stack: one the program
		// pushed goes with its pop; the entry below belongs to the
		// program outside, and is set back to none.
		if s.kitty == 0 {
			s.kittyBase = true
		}
	case final == 'm' && len(params) > 1 && params[0] == '>':
		p, v, _ := bytes.Cut(params[1:], []byte{';'})
		if string(p) == "4" {
			s.mok = len(v) > 0 && string(v) != "0"
		}
	}
}

// modeNumbers returns the numbers in a mode sequence's parameters.
func modeNumbers(params []byte) []int {
	var ns []int
	for _, p := range bytes.Split(params, []byte{';'}) {
		if n, err := strconv.Atoi(string(p)); err == nil {
			ns = append(ns, n)
		}
	}
	return ns
}

func setMode(m map[int]bool, n int, on bool) map[int]bool {
	if m == nil {
		m = map[int]bool{}
	}
	m[n] = on
	return m
}

// trackEsc follows an escape sequence the filter passed (ESC, its
// intermediates if any, final byte excluded) ending in final.
func (s *termState) trackEsc(seq []byte, final byte) {
	switch {
	case len(seq) == 1 && (final == '=' || final == '>'):
		s.keypad = final == '='
	case len(seq) == 1 && (final == 'n' || final == 'o' || final == '|' || final == '}' || final == '~'):
		s.charsets = true // G2 or G3 shifted in (LS2, LS3, LS1R..LS3R)
	case len(seq) == 2 && bytes.IndexByte([]byte("()*+-./"), seq[1]) >= 0 && final != 'B':
		s.charsets = true
	}
}

// trackOSC follows an OSC string the filter passed, numbered n.
func (s *termState) trackOSC(n int) {
	switch {
	case n == 4 || (n >= 10 && n <= 19):
		s.colours |= 1 << n
	case n == 104:
		s.colours &^= 1 << 4
	case n >= 110 && n <= 119:
		s.colours &^= 1 << (n - 100)
	}
}

// ResetModes returns the sequence that undoes what the filtered stream
// left switched on: the modes above, kitty keyboard levels and flags,
// modifyOtherKeys, the application keypad, character sets, the scroll
// region, the cursor style and colours, plus an SGR reset. It returns nil
// when there is nothing to undo.
func (f *Filter) ResetModes() []byte {
	s := &f.term
	var b []byte
	undo := func(modes []modeReset, seen map[int]bool, prefix string) {
		for _, r := range modes {
			if on, ok := seen[r.mode]; ok && on != r.on {
				b = append(b, prefix+strconv.Itoa(r.mode)...)
				if r.on {
					b = append(b, 'h')
				} else {
					b = append(b, 'l')
				}
			}
		}
	}
	// Origin mode and the scroll region go first: switching either off
	// moves the cursor home, which in the alternate screen is of no
	// consequence, as leaving it puts the cursor back (1049). Otherwise
	// the cursor goes to a new last line, so that the user's prompt does
	// not overwrite the top of the screen.
	homed := s.origin || s.margins
	if s.origin {
		b = append(b, "\x1b[?6l"...)
	}
	if s.margins {
		b = append(b, "\x1b[r"...)
	}
	undo(decModes, s.dec, "\x1b[?")
	if homed && !s.dec[1049] {
		b = append(b, "\x1b[999;1H\n"...)
	}
	undo(ansiModes, s.ansi, "\x1b[")
	if s.kitty > 0 {
		b = append(b, "\x1b[<"+strconv.Itoa(s.kitty)+"u"...)
	}
	if s.kittyBase {
		b = append(b, "\x1b[=0;1u"...)
	}
	if s.mok {
		b = append(b, "\x1b[>4m"...)
	}
	if s.keypad {
		b = append(b, "\x1b>"...)
	}
	if s.charsets {
		b = append(b, "\x0f\x1b(B"...) // G0 in use, and ASCII
	}
	if s.cursor {
		b = append(b, "\x1b[0 q"...)
	}
	for n := 4; n <= 19; n++ {
		if s.colours&(1<<n) != 0 {
			b = append(b, "\x1b]"+strconv.Itoa(100+n)+"\x1b\\"...) // OSC 104, 110-119
		}
	}
	if len(s.dec) > 0 || len(s.ansi) > 0 || b != nil {
		b = append(b, "\x1b[0m"...)
	}
	return b
}

// SuspendModes is ResetModes for a program that stopped and may go on:
// what it returns is taken as done, so that what the program switches on
// again is tracked afresh and nothing is undone twice (popping the kitty
// keyboard stack twice would pop entries of the program outside).
func (f *Filter) SuspendModes() []byte {
	b := f.ResetModes()
	done := func(modes []modeReset, seen map[int]bool) {
		for _, r := range modes {
			if _, ok := seen[r.mode]; ok {
				seen[r.mode] = r.on
			}
		}
	}
	done(decModes, f.term.dec)
	done(ansiModes, f.term.ansi)
	f.term = termState{dec: f.term.dec, ansi: f.term.ansi}
	return b
}
