package cli

import (
	"context"

	"github.com/fence-dev/fence/cmd/internal/config"
)

// netSession is one run's registration with the proxy daemon.
type netSession struct {
	ID  string // the session id, exported as FENCE_SESSION
	Dir string // holds http.sock and socks.sock for the sandbox's relay
}

// netOptions carry the running-form flags the daemon needs to re-resolve the
// session's policy on a config change.
type netOptions struct {
	Dir       string
	Settings  string
	Templates []string
	Monitor   bool // print this session's blocked events to stderr
}

// openNetSession registers a session for res with the proxy daemon, starting
// the daemon if needed. A nil session (no error) means no network relay:
// every connection from the sandbox fails closed.
func openNetSession(ctx context.Context, stdio Stdio, res *config.Resolved, opts netOptions) (*netSession, error) {
	return nil, nil
}

// Close ends the session and prints the one-line summary of what was blocked.
func (s *netSession) Close(stdio Stdio) {}

// daemonStatus describes the daemon and the live sessions of root (all
// sessions when root is empty) for `fence status`: human lines and a value
// for --json.
func daemonStatus(ctx context.Context, root string) (lines []string, jsonValue any) {
	return []string{"daemon: not available in this build yet"}, nil
}
