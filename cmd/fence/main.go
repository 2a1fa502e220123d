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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
