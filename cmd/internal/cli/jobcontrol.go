package cli

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/fence-dev/fence/shellhook"
)

// jobControl makes Ctrl-Z, fg and bg act on the whole sandbox, as they
// would on a command run without fence, when the command has no terminal
// of its own (`fence -- make > log`). The command runs in a session of its
// own (never the terminal's: it could then open /dev/tty for writing), so
// the terminal's job control reaches only fence. Left alone, Ctrl-Z stopped
// fence and the command ran on, reading the keyboard from its stdin: what
// the user typed into their shell next, a sudo password included, went to
// the sandbox.
type jobControl struct {
	sandbox interface {
		Suspend() error
		Resume() error
	}
	// keyboard is the terminal the command reads from, or nil.
	keyboard *os.File
	errOut   io.Writer

	suspended, told bool
}

// handle acts on SIGTSTP and SIGCONT, and reports whether s was one of
// them.
func (j *jobControl) handle(s os.Signal) bool {
	switch s {
	case syscall.SIGTSTP:
		j.suspend()
		stopSelf()
	case syscall.SIGCONT:
		if j.keyboard != nil && shellhook.InBackground(j.keyboard) {
			// Continued in the background (bg). A program reading its
			// terminal from the background stops (SIGTTIN); the command
			// reads a terminal that is not its controlling one, which
			// the kernel does not stop it for. So the sandbox stays
			// stopped until fence is in the foreground again.
			j.suspend()
			if !j.told {
				j.told = true
				fmt.Fprintln(j.errOut, "fence: the command stays stopped in the background: it has the keyboard on its stdin and would read what you type into your shell; fg continues it (to run it in the background, start it with </dev/null)")
			}
			stopSelf()
			return true
		}
		if j.suspended {
			j.suspended = false
			j.sandbox.Resume()
		}
	default:
		return false
	}
	return true
}

func (j *jobControl) suspend() {
	if !j.suspended {
		// Stopped or not, fence stops next: a sandbox that could not be
		// stopped is one that already ended.
		j.suspended = j.sandbox.Suspend() == nil
	}
}

// stopSelf stops fence, which the shell reports as a stopped job; it
// returns once fence is continued (fg, bg: SIGCONT follows).
func stopSelf() { syscall.Kill(os.Getpid(), syscall.SIGSTOP) }
