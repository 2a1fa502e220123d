package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/proxy/control"
	"github.com/fence-dev/fence/proxy/daemon"
	"github.com/fence-dev/fence/sandbox"
)

// pendingSandbox is a sandbox started before its policy is known.
type pendingSandbox interface {
	Start(ctx context.Context, spec *sandbox.Spec) (*sandbox.Process, error)
	Close()
}

// prepareSandbox gets a sandbox init ready before the policy is known: one
// the daemon booted ahead when it has one for this process (a warm init,
// docs/sandbox.md), otherwise one cloned now, which boots while the policy
// is loaded. FENCE_WARM_INIT=0 always clones; FENCE_WARM_INIT=require fails
// rather than clone (for tests and benchmarks of the warm path).
func prepareSandbox(spec *sandbox.Spec) (pendingSandbox, error) {
	mode := os.Getenv("FENCE_WARM_INIT")
	reason := "FENCE_WARM_INIT=0"
	if mode != "0" {
		var pd *sandbox.Pending
		pd, reason = takeWarmInit(spec)
		if pd != nil {
			return pd, nil
		}
		if mode == "require" {
			return nil, fmt.Errorf("no warm sandbox init (%s), and FENCE_WARM_INIT=require", reason)
		}
	}
	pd, err := sandbox.Prepare(spec)
	if err != nil {
		return nil, err
	}
	pd.Cold(reason)
	return pd, nil
}

// takeWarmInit asks a running daemon for a warm init; it never starts one.
func takeWarmInit(spec *sandbox.Spec) (*sandbox.Pending, string) {
	ctx, why := sandbox.InitContext()
	if ctx == "" {
		return nil, why
	}
	t := time.Now()
	sock, pidfd, reason, err := control.TakeInit(config.RuntimeDir(), ctx, sandbox.FixedCgroup())
	if err != nil {
		return nil, err.Error()
	}
	if sock < 0 {
		return nil, "the daemon has none: " + reason
	}
	pd, err := sandbox.Adopt(spec, sock, pidfd)
	if err != nil {
		return nil, err.Error()
	}
	pd.Warm(time.Since(t))
	return pd, ""
}

// initPool is the daemon's pool of warm inits; none with
// FENCE_WARM_INIT=0 in the daemon's environment.
func initPool() daemon.InitPool {
	if os.Getenv("FENCE_WARM_INIT") == "0" {
		return nil
	}
	return sandbox.NewWarmPool()
}
