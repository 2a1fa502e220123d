//go:build !linux

package cli

// Init runs the sandbox init; only Linux has one.
func Init(args []string) int { return ExitFenceFailed }
