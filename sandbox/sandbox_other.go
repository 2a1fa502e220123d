//go:build !linux && !darwin

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

// Start is not available on this operating system.
func Start(ctx context.Context, spec *Spec) (*Process, error) { return nil, ErrUnsupported }

// Wait is not available on this operating system.
func (p *Process) Wait() (int, error) { return 0, ErrUnsupported }

// Signal is not available on this operating system.
func (p *Process) Signal(sig os.Signal) error { return ErrUnsupported }

// Offline reports whether nothing reached the network session.
func (p *Process) Offline() bool { return false }

// Inside reports whether this process runs inside a fence sandbox.
func Inside() bool { return false }

// Diagnose lists what `fence doctor` checks.
func Diagnose() []Check { return nil }
