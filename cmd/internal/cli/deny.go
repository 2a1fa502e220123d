package cli

import "context"

func init() {
	register(&command{
		name:    "deny",
		args:    "[DIR]",
		summary: "stop trusting the project config of DIR",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("deny"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence deny")
		},
	})
}
