package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/sandbox"
	"github.com/fence-dev/fence/shellhook"
)

func init() {
	register(&command{
		name:    "hook",
		args:    "bash|zsh|fish",
		summary: "print the shell hook; add  eval \"$(fence hook bash)\"  to your rc file",
		run:     runHook,
	})
}

func runHook(ctx context.Context, stdio Stdio, args []string) error {
	fs := newFlagSet(stdio, lookup("hook"))
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return withHint(usagef("hook: want one shell name (bash, zsh or fish)"),
			"bash: eval \"$(fence hook bash)\"   zsh: eval \"$(fence hook zsh)\"   fish: fence hook fish | source")
	}
	if sandbox.Inside() {
		// A shell started inside a sandbox (a subshell of the fenced
		// shell, a terminal in an editor that runs inside) must not try
		// to enter anything; fence's own init handles the fenced shell.
		_, err := fmt.Fprintf(stdio.Out, "# fence: inside a sandbox; the %s hook does nothing here\n", pos[0])
		return err
	}
	self, err := selfPath()
	if err != nil {
		return err
	}
	opts := shellhook.HookOptions{Fence: self}
	// autoEnter patterns come from the user config only; a broken config
	// must not break the user's shell startup, so it is reported and the
	// hook printed without them.
	if res, err := config.Load(config.Options{Dir: "/", ReadOnly: true}); err == nil {
		opts.AutoEnter = res.Shell.AutoEnter
	} else {
		fmt.Fprintf(stdio.Err, "fence: hook: %v (autoEnter patterns ignored)\n", err)
	}
	s, err := shellhook.Hook(pos[0], opts)
	if errors.Is(err, shellhook.ErrUnknownShell) {
		return usagef("hook: unknown shell %q (bash, zsh or fish)", pos[0])
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(stdio.Out, s)
	return err
}

// selfPath is the absolute path of the running fence binary, symlinks
// resolved, for hooks and init files that must run this very binary and not
// whatever `fence` comes first in PATH (ATTACKS.md H-03).
func selfPath() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the fence binary: %w", err)
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return p, nil
}
