package cli

import "github.com/fence-dev/fence/sandbox"

// IsInit reports whether args (os.Args) ask for the hidden sandbox init:
// the fence binary re-executed by [sandbox.Start] inside the new
// namespaces.
func IsInit(args []string) bool { return len(args) == 2 && args[1] == sandbox.InitArg }
