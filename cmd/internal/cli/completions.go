package cli

import "context"

func init() {
	register(&command{
		name:    "completions",
		args:    "bash|zsh|fish",
		summary: "print a completion script",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("completions"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence completions")
		},
	})
}
