package cli

import (
	"context"

	"github.com/fence-dev/fence/sandbox"
)

// pendingSandbox is a sandbox started before its policy is known.
type pendingSandbox interface {
	Start(ctx context.Context, spec *sandbox.Spec) (*sandbox.Process, error)
	Close()
}

// prepareSandbox starts the sandbox init early (see sandbox.Prepare).
func prepareSandbox(spec *sandbox.Spec) (pendingSandbox, error) { return sandbox.Prepare(spec) }
