//go:build !linux

package cli

import (
	"context"

	"github.com/fence-dev/fence/proxy/daemon"
	"github.com/fence-dev/fence/sandbox"
)

// pendingSandbox is a sandbox started before its policy is known.
type pendingSandbox interface {
	Start(ctx context.Context, spec *sandbox.Spec) (*sandbox.Process, error)
	Close()
}

// lazySandbox starts the sandbox only when the policy is known: there is
// nothing to start ahead of time here.
type lazySandbox struct{}

func (lazySandbox) Start(ctx context.Context, spec *sandbox.Spec) (*sandbox.Process, error) {
	return sandbox.Start(ctx, spec)
}

func (lazySandbox) Close() {}

func prepareSandbox(spec *sandbox.Spec, early *earlySession) (pendingSandbox, error) {
	return lazySandbox{}, nil
}

// warmInitAsk: no warm inits outside Linux.
func warmInitAsk() (exe, why string) { return "", "not on Linux" }

// initPool: no warm inits outside Linux.
func initPool() daemon.InitPool { return nil }
