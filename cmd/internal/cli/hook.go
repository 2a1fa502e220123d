package cli

import "context"

func init() {
	register(&command{
		name:    "hook",
		args:    "bash|zsh|fish",
		summary: "print the shell hook; add  eval \"$(fence hook bash)\"  to your rc file",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("hook"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence hook")
		},
	})
}
