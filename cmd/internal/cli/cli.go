// Package cli is fence's command line: it parses arguments, dispatches to one
// subcommand per file, and is the only place that prints to the user, picks
// exit codes and writes hints. The libraries it drives (config, sandbox,
// proxy, shellhook) return errors and plain data.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit statuses of the running forms (DESIGN.md §2). A command's own status
// passes through unchanged; these are the ones fence picks itself.
const (
	ExitFenceFailed = 125 // fence itself failed: bad config, no sandbox, no daemon
	ExitCannotExec  = 126 // COMMAND exists but could not be executed
	ExitNotFound    = 127 // COMMAND was not found
	ExitUsage       = 2   // a management subcommand was called wrongly
)

// Stdio is where a command reads and writes. Tests and the real binary both
// use the process's own files; the type exists so that subcommands never
// reach for os.Stdout behind the dispatcher's back.
type Stdio struct {
	In       *os.File
	Out, Err io.Writer
}

// command is one subcommand: its name, a one-line summary for `fence help`,
// and the function that runs it with the arguments after its name.
type command struct {
	name    string
	args    string // usage after the name, e.g. "[DIR] [--json]"
	summary string
	run     func(ctx context.Context, io Stdio, args []string) error
	hidden  bool
}

var commands []*command

// register adds a subcommand; each subcommand's file calls it from init.
func register(c *command) { commands = append(commands, c) }

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// RunsCommand reports whether args (without the program name) are a running
// form, `fence [flags] -- CMD` or `fence [flags] -c STRING`, which Main
// hands to runCommand.
func RunsCommand(args []string) bool {
	return len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help"
}

// Main runs fence with args (without the program name) and returns the exit
// status.
func Main(ctx context.Context, args []string) int {
	stdio := Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	if len(args) == 0 {
		usage(stdio.Err)
		return ExitUsage
	}
	switch a := args[0]; {
	case a == "-h" || a == "--help" || a == "help":
		if len(args) > 1 && a == "help" {
			if c := lookup(args[1]); c != nil {
				return report(stdio, c.run(ctx, stdio, []string{"--help"}), ExitUsage)
			}
		}
		usage(stdio.Out)
		return 0
	case RunsCommand(args):
		// The running forms: fence [flags] -- CMD, fence [flags] -c STRING.
		code, err := runCommand(ctx, stdio, args)
		if err != nil {
			return report(stdio, err, ExitFenceFailed)
		}
		return code
	}
	c := lookup(args[0])
	if c == nil {
		err := withHint(fmt.Errorf("unknown command %q", args[0]),
			"run 'fence help' for the list of commands; to run a program sandboxed use 'fence -- "+args[0]+"'")
		return report(stdio, err, ExitUsage)
	}
	return report(stdio, c.run(ctx, stdio, args[1:]), ExitFenceFailed)
}

// report prints err the way fence prints errors and returns the exit status
// for it: 0 for nil, the status carried by an [exitError], or fallback.
func report(stdio Stdio, err error, fallback int) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ex *exitError
	if errors.As(err, &ex) {
		if ex.err == nil {
			return ex.code
		}
		fallback = ex.code
		err = ex.err
	}
	var uerr *usageError
	if errors.As(err, &uerr) {
		fallback = ExitUsage
	}
	fmt.Fprintf(stdio.Err, "fence: %v\n", err)
	var h *hintError
	if errors.As(err, &h) {
		for _, line := range strings.Split(h.hint, "\n") {
			fmt.Fprintf(stdio.Err, "fence: hint: %s\n", line)
		}
	}
	return fallback
}

// hintError is an error with advice the CLI prints on its own line.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// withHint attaches a hint to err ("fence: hint: ..." under the error).
func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// exitError makes Main exit with code; a nil err means exit silently.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// exitCode returns an error that makes Main exit with code without a message.
func exitCode(code int) error { return &exitError{code: code} }

// usageError marks a wrongly called subcommand (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// newFlagSet returns a flag set for subcommand name whose -h/--help prints a
// usage line and the flags to out.
func newFlagSet(stdio Stdio, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(stdio.Err)
	fs.Usage = func() {
		w := stdio.Out
		fmt.Fprintf(w, "usage: fence %s %s\n\n%s\n", c.name, c.args, c.summary)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(w, "\nflags:")
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(stdio.Err)
		}
	}
	return fs
}

// parseInterspersed parses flags that may appear before or after positional
// arguments (fence status DIR --json), returning the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `fence makes a project directory a sandbox.

usage:
  fence [flags] -- COMMAND [ARG...]   run COMMAND sandboxed with the policy for the current directory
  fence [flags] -c 'STRING'           same, through /bin/sh -c STRING
  fence COMMAND [ARGS]

flags of the running forms:
  -s, --settings FILE   use FILE as the project layer (trusted because you named it)
  -t, --template NAME   add a built-in template (repeatable)
  -p, --port N          publish sandbox port N on the host's 127.0.0.1 (repeatable)
  -m, --monitor         print this session's blocked events to stderr
  -d, --debug           explain decisions: config chain, mounts, rules

commands:
`)
	sorted := append([]*command(nil), commands...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		if c.hidden {
			continue
		}
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun 'fence help COMMAND' or 'fence COMMAND --help' for details.\n")
}
