package cli

import "context"

func init() {
	register(&command{
		name:    "import",
		args:    "FILE",
		summary: "convert an upstream fence JSON/JSONC config to .fence.toml",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				fs := newFlagSet(stdio, lookup("import"))
				fs.Usage()
				return nil
			}
			return errNotAvailable("fence import")
		},
	})
}
