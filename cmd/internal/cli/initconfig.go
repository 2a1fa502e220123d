package cli

import "context"

func init() {
	register(&command{
		name:    "init",
		args:    "[--template NAME] [--list]",
		summary: "write a commented starter .fence.toml in the current directory",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("init"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence init")
		},
	})
}
