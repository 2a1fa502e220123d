package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/fence-dev/fence/cmd/internal/config"
)

func init() {
	register(&command{
		name:    "status",
		args:    "[DIR] [--json]",
		summary: "project root, config chain, trust state, daemon, live sessions, counts",
		run:     runStatus,
	})
}

func runStatus(ctx context.Context, stdio Stdio, args []string) error {
	fs := newFlagSet(stdio, lookup("status"))
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("fence status: too many arguments")
	}
	opts := config.Options{}
	if len(pos) == 1 {
		opts.Dir = pos[0]
	}
	res, err := loadConfig(opts)
	if err != nil {
		return err
	}
	daemonLines, daemonJSON := daemonStatus(ctx, res.Root)
	if *asJSON {
		var chain []config.Source
		for _, s := range res.Chain {
			if s.Exists {
				chain = append(chain, s)
			}
		}
		return writeJSON(stdio.Out, map[string]any{
			"root":       res.Root,
			"configFile": res.ConfigFile,
			"chain":      chain,
			"trust":      res.Trust,
			"applied":    res.Applied,
			"grants":     nonNil(res.Grants),
			"newGrants":  nonNil(res.NewGrants),
			"notices":    nonNil(res.Notices),
			"daemon":     daemonJSON,
		})
	}
	w := stdio.Out
	if res.Root == "" {
		fmt.Fprintf(w, "project:  none (no %s in %s or above)\n", config.ProjectFile, config.DisplayPath(res.Dir))
	} else {
		fmt.Fprintf(w, "project:  %s\n", config.Printable(res.Root))
		fmt.Fprintf(w, "config:   %s\n", config.DisplayPath(res.ConfigFile))
	}
	var chain []string
	for _, s := range res.Chain {
		if !s.Exists {
			continue
		}
		switch {
		case s.Template != "":
			chain = append(chain, "template "+s.Template)
		case s.File != "":
			chain = append(chain, config.DisplayPath(s.File))
		default:
			chain = append(chain, "built-in")
		}
	}
	fmt.Fprintf(w, "chain:    %s\n", strings.Join(chain, " < "))
	if res.ConfigFile != "" {
		fmt.Fprintf(w, "trust:    %s\n", trustLine(res))
		switch {
		case len(res.Grants) == 0:
			fmt.Fprintln(w, "grants:   nothing beyond your user config")
		case res.Trust == config.Changed && !res.Applied:
			fmt.Fprintf(w, "changed:  %s\n", strings.Join(res.NewGrants, ", "))
			fmt.Fprintf(w, "'fence allow' would grant: %s\n", strings.Join(res.Grants, ", "))
		case res.Applied:
			fmt.Fprintf(w, "grants:   %s\n", strings.Join(res.Grants, ", "))
		default:
			fmt.Fprintf(w, "'fence allow' would grant: %s\n", strings.Join(res.Grants, ", "))
		}
	}
	for _, l := range daemonLines {
		fmt.Fprintln(w, l)
	}
	return nil
}
