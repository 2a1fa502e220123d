package cli

import "context"

func init() {
	register(&command{
		name:    "shell",
		args:    "[flags] [DIR]",
		summary: "interactive sandboxed shell for DIR's project, in a fresh PTY",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("shell"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence shell")
		},
	})
}
