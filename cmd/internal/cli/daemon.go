package cli

import "context"

func init() {
	register(&command{
		name:    "daemon",
		args:    "start|stop|status|run",
		summary: "manage the per-user proxy daemon (it also starts on demand)",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("daemon"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence daemon")
		},
	})
}
