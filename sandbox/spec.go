package sandbox

import (
	"context"
	"errors"
	"io"
	"os"
)

// Spec describes one sandboxed process: what to run, under which [Policy],
// and how it is connected to the outside.
type Spec struct {
	Policy Policy

	// Args is the command and its arguments; Args[0] is looked up in PATH
	// inside the sandbox.
	Args []string
	// Dir is the working directory (the same path inside and outside).
	Dir string
	// Env is the caller's environment; Start filters it (DESIGN.md §6.5)
	// and adds the proxy variables, TMPDIR and FENCE_SESSION.
	Env []string

	// Stdin, Stdout and Stderr are passed to the command untouched when TTY
	// is false (pipes stay pipes). With TTY, a Stdout is passed as the
	// command's standard output instead of the PTY where [CanPassStdout]
	// (the caller's stdout is a file or a pipe, and stays one), and Stderr
	// is where the sandbox's own messages go (see PassStderr).
	Stdin, Stdout, Stderr *os.File

	// TTY asks for an interactive session: the command gets a PTY whose
	// slave lives in the sandbox's own devpts, as its controlling terminal,
	// and [Process.TTY] is the master for the caller to relay.
	TTY bool
	// Rows and Cols are the PTY's initial window size.
	Rows, Cols uint16
	// PassStderr, with TTY, gives the command Stderr as its standard error
	// instead of the PTY (the caller's stderr is a file or a pipe, and
	// stays one). Linux only; elsewhere stderr is the PTY.
	PassStderr bool
	// StopToLeave says that the command is an interactive shell that stops
	// itself (SIGSTOP, from fence's prompt hook) to ask to leave the
	// sandbox for its working directory: the sandbox then ends, and
	// [Process.LeftFor] gives that directory as the kernel has it, which
	// nothing else in the sandbox can choose (ATTACKS.md H-04). Linux only;
	// elsewhere the shell writes the directory to a file and exits.
	StopToLeave bool

	// Relay is the proxy daemon's directory for this session, holding
	// http.sock and socks.sock. The sandbox init relays 127.0.0.1:3128 and
	// [::1]:3128 to http.sock and :1080 to socks.sock. Empty means no
	// relay: every connection fails closed.
	Relay string
	// SessionID is exported as FENCE_SESSION (informational only).
	SessionID string

	// Debug, when set, receives the explanation of decisions (mount plan,
	// rules). Monitor, when set, receives "[fence:fs] ..." event lines.
	Debug, Monitor io.Writer
	// Notices, when set, receives "fence: ..." lines the user must see
	// whatever the flags: a protected path created inside and quarantined,
	// a protection layer running degraded.
	Notices io.Writer

	// Discard, when set, takes descriptors the sandbox is done with whose
	// close may block: closing the protected-path watcher's inotify
	// instance waits for an SRCU grace period (usually well under a
	// millisecond, 20 ms at times), which the caller can leave to a
	// process that outlives it (the daemon). Otherwise they are closed
	// here.
	Discard func(*os.File)

	// ahead is the plan PlanAhead built (Linux: *planned).
	//lint:ignore U1000 only the Linux backend builds a plan ahead
	ahead any
}

// InitArg is the argument (os.Args[1]) that makes the fence binary run as
// the sandbox init; see RunInit.
const InitArg = "__fence_sandbox_init"

// HintOf returns the advice attached to an error from [Start] (what the
// user can do about it), or "".
func HintOf(err error) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}

// hintedError is a sandbox failure with advice for the user; see [HintOf].
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() }
func (e *hintedError) Unwrap() error { return e.err }
func (e *hintedError) Hint() string  { return e.hint }

// ErrUnsupported is returned by [Start] on an operating system fence cannot
// sandbox on.
var ErrUnsupported = errors.New("sandboxing is not supported on this operating system")

// Run starts the sandboxed process and waits for it; see [Start] and
// [Process.Wait].
func Run(ctx context.Context, spec *Spec) (int, error) {
	p, err := Start(ctx, spec)
	if err != nil {
		return 0, err
	}
	return p.Wait()
}

// Check is one line of `fence doctor`: a kernel or environment feature, and
// whether it is usable here.
type Check struct {
	Name   string // "user namespaces", "landlock", ...
	OK     bool
	Detail string // what was found ("ABI 7"), or what is missing
	Fix    string // what to do when !OK; empty when nothing can be done
	// Required reports whether sessions refuse to start without it (unless
	// the user accepted the weaker mode).
	Required bool
}
