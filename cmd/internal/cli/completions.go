package cli

import (
	"context"
	"fmt"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/completions"
)

func init() {
	register(&command{
		name:    "completions",
		args:    "bash|zsh|fish",
		summary: "print a completion script",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			fs := newFlagSet(stdio, lookup("completions"))
			pos, err := parseInterspersed(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 {
				return withHint(usagef("completions: want one shell name (bash, zsh or fish)"),
					"bash: fence completions bash > ~/.local/share/bash-completion/completions/fence")
			}
			s, err := completions.Script(pos[0], config.Templates())
			if err != nil {
				return usagef("%v", err)
			}
			_, err = fmt.Fprint(stdio.Out, s)
			return err
		},
	})
}
