package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error is a problem in one config file, at a line and column when known.
// Its message reads "FILE:LINE:COL: MSG", FILE relative to the current
// directory when it is under it.
type Error struct {
	File string // absolute path, or "template NAME" for a built-in template
	Line int    // 1-based; 0 when the error concerns the whole file
	Col  int    // 1-based; 0 when unknown
	Msg  string
	// Hint is advice on how to fix it, printed by the CLI on its own line.
	Hint string
}

func (e *Error) Error() string {
	return oneLine(e.location() + e.Msg)
}

func (e *Error) location() string {
	f := displayPath(e.File)
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: ", f, e.Line, e.Col)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: ", f, e.Line)
	}
	return f + ": "
}

// oneLine escapes control characters so an error stays one line on the
// terminal and cannot carry escape sequences from a config file.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// isBidi reports whether r is a bidirectional formatting character, which
// can make a terminal show text in another order than it is.
func isBidi(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// Printable returns s as it may be shown on a terminal: unchanged when it
// is valid UTF-8 made of printable characters (and ASCII spaces), else
// Go-quoted, so that a carriage return, an escape sequence or a bidi
// override in a path or value from a repository (or in a directory name)
// can neither rewrite nor reorder what fence prints around it.
func Printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	return strconv.Quote(s)
}

// displayPath shows p relative to the working directory or as ~/...,
// whichever base is closer (longer), else absolute.
func displayPath(p string) string { return Printable(shortPath(p)) }

func shortPath(p string) string {
	if !filepath.IsAbs(p) {
		return p
	}
	wd, _ := os.Getwd()
	h := home()
	under := func(base string) bool {
		return base != "" && base != "/" && (p == base || strings.HasPrefix(p, base+"/"))
	}
	switch {
	case under(h) && (!under(wd) || len(h) > len(wd)):
		if p == h {
			return "~"
		}
		return "~/" + p[len(h)+1:]
	case under(wd):
		if p == wd {
			return "."
		}
		return p[len(wd)+1:]
	}
	return p
}

// DisplayPath is how fence shows a file to the user: relative to the
// current directory when under it, else ~/..., else absolute; through
// [Printable].
func DisplayPath(p string) string { return displayPath(p) }
