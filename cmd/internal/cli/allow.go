package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fence-dev/fence/cmd/internal/config"
)

func init() {
	register(&command{
		name:    "allow",
		args:    "[DIR]",
		summary: "trust the project config of DIR (default: the current directory)",
		run:     runAllow,
	})
}

func oneDir(stdio Stdio, name string, args []string) (string, error) {
	fs := newFlagSet(stdio, lookup(name))
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) > 1 {
		return "", usagef("fence %s: too many arguments", name)
	}
	if len(pos) == 1 {
		return pos[0], nil
	}
	return os.Getwd()
}

func runAllow(ctx context.Context, stdio Stdio, args []string) error {
	dir, err := oneDir(stdio, "allow", args)
	if err != nil {
		return err
	}
	res, err := loadConfig(config.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		return err
	}
	if res.ConfigFile == "" {
		abs, _ := filepath.Abs(dir)
		return withHint(fmt.Errorf("no %s in %s or above", config.ProjectFile, config.Printable(abs)),
			"run 'fence init' to write one")
	}
	if !printGrants(stdio.Out, res) {
		return nil
	}
	if err := config.Allow(res); err != nil {
		return insideHint(err)
	}
	fmt.Fprintf(stdio.Out, "trusted %s\n", config.Printable(res.Root))
	return nil
}

// printGrants prints what trusting res's project config would grant beyond
// the user config, and reports whether there is anything left to trust.
func printGrants(w io.Writer, res *config.Resolved) bool {
	cf := config.DisplayPath(res.ConfigFile)
	if res.Trust == config.Trusted {
		fmt.Fprintf(w, "%s is already trusted\n", cf)
		return false
	}
	if res.Trust == config.Changed && len(res.NewGrants) > 0 {
		fmt.Fprintf(w, "changed since the last 'fence allow': %s\n", strings.Join(res.NewGrants, ", "))
	}
	if len(res.Grants) == 0 {
		fmt.Fprintf(w, "%s grants nothing beyond your user config\n", cf)
	} else {
		fmt.Fprintf(w, "%s grants beyond your user config:\n", cf)
		for _, g := range res.Grants {
			fmt.Fprintf(w, "  %s%s\n", g, grantNote(g))
		}
	}
	return true
}

// insideHint explains a trust store that cannot be written from inside a
// sandbox, where it is read-only by design.
func insideHint(err error) error {
	if os.Getenv("FENCE_SESSION") != "" {
		return withHint(err, "the trust store is read-only inside a fence sandbox; run this in a shell outside it")
	}
	return err
}

// grantNote points out the grants that reach beyond the project directory.
func grantNote(g string) string {
	p, ok := strings.CutPrefix(g, "+write ")
	if u, err := strconv.Unquote(p); ok && err == nil {
		p = u // shown quoted for the terminal (config.Printable)
	}
	switch {
	case !ok:
		return ""
	case p == "~" || p == "/":
		return "   (everything under " + p + "!)"
	case strings.HasPrefix(p, "~/") || strings.HasPrefix(p, "/"):
		return "   (outside the project)"
	}
	return ""
}
