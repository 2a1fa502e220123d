package cli

import "context"

func init() {
	register(&command{
		name:    "allow",
		args:    "[DIR]",
		summary: "trust the project config of DIR (default: the current directory)",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("allow"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence allow")
		},
	})
}
