
package sandbox

import (
	"context"
	"os"
)

// Process is a running sandboxed command.
type Process struct {
	// TTY is the PTY master of an interactive session, nil otherwise.
	TTY *os.File
}

// Start starts the sandboxed process described by spec.
func Start(ctx context.Context, spec *Spec) (*Process, error) { return nil, ErrUnsupported }

// Wait is not written yet.
func (p *Process) Wait() (int, error) { return 0, ErrUnsupported }

// Signal is not written yet.
func (p *Process) Signal(sig os.Signal) error { return ErrUnsupported }

// Inside reports whether this process runs inside a fence sandbox.
func Inside() bool { return false }

// Diagnose lists what `fence doctor` checks.
func Diagnose() []Check { return nil }
