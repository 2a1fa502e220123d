package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// displayPath shows p relative to the working directory or as ~/...,
// whichever base is closer (longer), else absolute.
func displayPath(p string) string {
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
// current directory when under it, else ~/..., else absolute.
func DisplayPath(p string) string { return displayPath(p) }
