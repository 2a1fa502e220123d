package cli

import "context"

func init() {
	register(&command{
		name:    "doctor",
		args:    "",
		summary: "check the kernel and environment; say what is missing and how to fix it",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("doctor"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence doctor")
		},
	})
}
