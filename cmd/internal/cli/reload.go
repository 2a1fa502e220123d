package cli

import (
	"context"
	"errors"

	"github.com/fence-dev/fence/sandbox"
)

// `fence reload` restarts a sandboxed shell in place with the current
// policy. The work is done by the fence client outside the sandbox: inside,
// fence's init defines a `fence` shell function that turns `fence reload`
// into an exit with [shellhook.ExitReload], and the client, seeing that
// status from the shell itself, starts a new sandbox in the same directory.
// Nothing inside the sandbox can reach the client otherwise, so the binary
// form below can only explain.
func init() {
	register(&command{
		name:    "reload",
		args:    "",
		summary: "restart the sandboxed shell in place with the current policy",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			fs := newFlagSet(stdio, lookup("reload"))
			pos, err := parseInterspersed(fs, args)
			if err != nil {
				return err
			}
			if len(pos) > 0 {
				return usagef("reload takes no arguments")
			}
			if !sandbox.Inside() {
				return withHint(errors.New("reload: not inside a fence shell"),
					"fence reload restarts a sandboxed shell; outside one, 'fence shell' or cd into the project starts a new one")
			}
			return withHint(errors.New("reload: only the sandboxed shell itself can restart"),
				"type 'fence reload' at the fenced shell's prompt (it is a shell function there), or exit and enter again")
		},
	})
}
