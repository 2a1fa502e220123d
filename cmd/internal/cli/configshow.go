package cli

import "context"

func init() {
	register(&command{
		name:    "config",
		args:    "show [DIR] [--json]",
		summary: "print the resolved policy and where each rule came from",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("config"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence config")
		},
	})
}
