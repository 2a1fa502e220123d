package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/sandbox"
)

func init() {
	register(&command{
		name:    "deny",
		args:    "[DIR]",
		summary: "stop trusting the project config of DIR",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			dir, err := oneDir(stdio, "deny", args)
			if err != nil {
				return err
			}
			if sandbox.Inside() {
				// The trust store is hidden inside: it would say the
				// project "was not trusted", whatever it is.
				return withHint(errors.New("deny: the trust store cannot be read or changed from inside a fence sandbox"), "run 'fence deny' in a shell outside it")
			}
			root, ok := config.FindRoot(dir)
			if !ok {
				// The config may be gone; its trust record can still go.
				if root, err = filepath.Abs(dir); err != nil {
					return err
				}
			}
			was, err := config.Deny(root)
			if err != nil {
				return insideHint(err)
			}
			if was {
				fmt.Fprintf(stdio.Out, "no longer trusted: %s\n", root)
			} else {
				fmt.Fprintf(stdio.Out, "%s was not trusted\n", root)
			}
			return nil
		},
	})
}
