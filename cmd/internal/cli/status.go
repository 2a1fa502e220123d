package cli

import "context"

func init() {
	register(&command{
		name:    "status",
		args:    "[DIR] [--json]",
		summary: "project root, config chain, trust state, daemon, live sessions, counts",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("status"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence status")
		},
	})
}
