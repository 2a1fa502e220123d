package cli

import "context"

// runCommand runs the forms `fence [flags] -- CMD` and `fence [flags] -c STRING`.
// It returns the command's exit status, or an error when fence itself failed.
func runCommand(ctx context.Context, stdio Stdio, args []string) (int, error) {
	return 0, errNotAvailable("running a sandboxed command")
}
