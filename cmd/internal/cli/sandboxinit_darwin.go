package cli

import "github.com/fence-dev/fence/sandbox"

// Init runs the exec shim that sandbox-exec starts (see sandbox.RunInit)
// and returns its exit status when the command could not be executed.
func Init(args []string) int { return sandbox.RunInit() }
