package cli

import "github.com/fence-dev/fence/sandbox"

// Init runs the sandbox init and returns its exit status.
func Init(args []string) int { return sandbox.RunInit() }
