package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

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
// is loaded. The warm init comes with the early network session when there
// is one, otherwise from a request of its own. FENCE_WARM_INIT=0 always
// clones; FENCE_WARM_INIT=require fails rather than clone (for tests and
// benchmarks of the warm path).
func prepareSandbox(spec *sandbox.Spec, early *earlySession) (pendingSandbox, error) {
	mode := os.Getenv("FENCE_WARM_INIT")
	reason := "FENCE_WARM_INIT=0"
	if mode != "0" {
		t := time.Now()
		var w warmInit
		if early != nil {
			// The daemon sends the init's context: compare it with this
			// process's, read while the daemon answers (not when no
			// request went out: without a daemon, say).
			var mine, why string
			if early.asked() {
				mine, why = sandbox.InitContext()
			}
			w = checkContext(early.takeInit(), mine, why)
		} else {
			w = takeWarmInit()
		}
		var pd *sandbox.Pending
		pd, reason = adoptWarmInit(spec, w)
		if pd != nil {
			pd.Warm(time.Since(t))
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

// asked reports, once the request went out or could not, whether it
// asked for a warm init.
func (e *earlySession) asked() bool {
	<-e.sent
	return e.askedInit
}

// takeInit returns the warm init that came with the session, once; the
// caller owns its descriptors.
func (e *earlySession) takeInit() warmInit {
	<-e.done
	w := e.init
	e.init = warmInit{sock: -1, pidfd: -1, reason: "already taken"}
	return w
}

// warmInitAsk is what a client sends with an open to ask for a warm init
// (the identity of its binary), or why it does not ask: it could not use
// one (FENCE_WARM_INIT=0, or confined by something outside fence). The
// rest of its context it compares itself (checkContext).
func warmInitAsk() (exe, why string) {
	if os.Getenv("FENCE_WARM_INIT") == "0" {
		return "", "FENCE_WARM_INIT=0"
	}
	if why := sandbox.Confined(); why != "" {
		return "", why
	}
	return sandbox.ExeIdentity(), ""
}

// checkContext keeps w only if the init's process context is this
// process's (mine; empty with why when it may have none): the same
// comparison the daemon makes for a client that sends its context.
func checkContext(w warmInit, mine, why string) warmInit {
	if w.sock < 0 {
		return w
	}
	if mine == "" || w.context != mine {
		unix.Close(w.sock)
		unix.Close(w.pidfd)
		if mine == "" {
			return warmInit{sock: -1, pidfd: -1, reason: why}
		}
		return warmInit{sock: -1, pidfd: -1, reason: sandbox.ContextDiffers}
	}
	return w
}

// takeWarmInit asks a running daemon for a warm init; it never starts one.
func takeWarmInit() warmInit {
	w := warmInit{sock: -1, pidfd: -1}
	ctx, why := sandbox.InitContext()
	if ctx == "" {
		w.reason = why
		return w
	}
	var err error
	w.sock, w.pidfd, w.reason, err = control.TakeInit(config.RuntimeDir(), ctx)
	if err != nil {
		w.reason = err.Error()
	}
	return w
}

// adoptWarmInit makes w the sandbox for spec; nil (and why) if there is
// none or it cannot be used.
func adoptWarmInit(spec *sandbox.Spec, w warmInit) (*sandbox.Pending, string) {
	if w.sock < 0 {
		if w.reason == "" {
			return nil, "the daemon has none"
		}
		return nil, "the daemon has none: " + w.reason
	}
	pd, err := sandbox.Adopt(spec, w.sock, w.pidfd)
	if err != nil {
		return nil, err.Error()
	}
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
