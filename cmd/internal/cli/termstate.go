package cli

import (
	"os"

	"golang.org/x/term"
)

// saveTerminal records the terminal modes of f when it is a terminal and
// returns a function that puts them back. `fence -- CMD` gives the command
// the caller's terminal as its stdio (no PTY): whatever modes it leaves
// behind (no echo, raw), the caller's shell gets its terminal back as it was.
func saveTerminal(f *os.File) func() {
	if f == nil || !term.IsTerminal(int(f.Fd())) || !foreground(f) {
		// In the background, setting the modes would stop fence (SIGTTOU).
		return func() {}
	}
	st, err := term.GetState(int(f.Fd()))
	if err != nil {
		return func() {}
	}
	return func() { term.Restore(int(f.Fd()), st) }
}
