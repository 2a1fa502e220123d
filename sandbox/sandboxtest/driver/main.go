// Command driver runs one command through sandbox.Start, for tests of the
// library itself (a test binary built with cgo cannot be the sandbox init).
// With -tty it relays its stdin and stdout to the PTY master, like a
// minimal fence shell. It exits with the command's status, or 125 when
// the sandbox failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/fence-dev/fence/sandbox"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == sandbox.InitArg {
		os.Exit(sandbox.RunInit())
	}
	tty := flag.Bool("tty", false, "run on a PTY")
	rows := flag.Uint("rows", 24, "PTY rows")
	cols := flag.Uint("cols", 80, "PTY columns")
	relay := flag.String("relay", "", "directory with http.sock and socks.sock")
	var publish, local ports
	flag.Var(&publish, "publish", "publish sandbox port N on the host's 127.0.0.1 (repeatable)")
	flag.Var(&local, "local", "let the sandbox reach the host's 127.0.0.1:N (repeatable)")
	bind := flag.Bool("allow-bind", false, "allow binding sockets")
	var write, shellWrite paths
	flag.Var(&write, "write", "allow writing `PATH` (repeatable)")
	shellDir := flag.String("shell-dir", "", "fence shell's directory, read-only but for -shell-write")
	flag.Var(&shellWrite, "shell-write", "a `PATH` in -shell-dir the session writes (repeatable)")
	flag.Parse()
	wd, _ := os.Getwd()
	spec := &sandbox.Spec{
		Args: flag.Args(), Dir: wd, Env: os.Environ(), TTY: *tty, Rows: uint16(*rows), Cols: uint16(*cols),
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Notices: os.Stderr, Relay: *relay,
		Policy: sandbox.Policy{Publish: publish, LocalOutbound: local, AllowLocalBinding: *bind || len(publish) > 0,
			AllowWrite: write, ShellDir: *shellDir, ShellWrite: shellWrite},
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	p, err := sandbox.Start(context.Background(), spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		os.Exit(125)
	}
	go func() {
		for s := range sigs {
			p.Signal(s)
		}
	}()
	copied := make(chan struct{})
	if *tty {
		go io.Copy(p.TTY, os.Stdin)
		go func() { io.Copy(os.Stdout, p.TTY); close(copied) }()
	} else {
		close(copied)
	}
	st, err := p.Wait()
	<-copied
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		os.Exit(125)
	}
	os.Exit(st)
}

type ports []int

func (p *ports) String() string { return fmt.Sprint(*p) }

func (p *ports) Set(s string) error {
	n, err := strconv.Atoi(s)
	*p = append(*p, n)
	return err
}

type paths []string

func (p *paths) String() string { return fmt.Sprint(*p) }

func (p *paths) Set(s string) error {
	*p = append(*p, s)
	return nil
}
