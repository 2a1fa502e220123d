package cli

import "context"

func init() {
	register(&command{
		name:    "monitor",
		args:    "[DIR]",
		summary: "live stream of blocked events (all sessions, or one project)",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("monitor"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence monitor")
		},
	})
}
