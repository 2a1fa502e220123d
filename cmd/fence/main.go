// Command fence turns a project directory into a sandbox. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/fence-dev/fence/cmd/internal/cli"
)

func main() {
	// The sandbox init is the same binary re-executed; it must not install
	// signal handlers of its own before the init code decides what to forward.
	if cli.IsInit(os.Args) {
		os.Exit(cli.Init(os.Args))
	}
	ctx := context.Background()
	if !cli.RunsCommand(os.Args[1:]) {
		// Not stopped before the exit: that would be a round trip to the
		// runtime's signal thread per signal, for nothing. `fence --`
		// registers the signals it forwards itself, while its policy
		// loads; until then they end it, as they would any program that
		// has not started anything.
		ctx, _ = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	}
	os.Exit(cli.Main(ctx, os.Args[1:]))
}
