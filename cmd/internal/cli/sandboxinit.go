package cli

// IsInit reports whether args (os.Args) ask for the hidden sandbox init.
func IsInit(args []string) bool { return false }

// Init runs the sandbox init and returns its exit status.
func Init(args []string) int { return ExitFenceFailed }
