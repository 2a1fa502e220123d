//go:build !linux && !darwin

package cli

// Init runs the sandbox init; only Linux and macOS have one.
func Init(args []string) int { return ExitFenceFailed }
