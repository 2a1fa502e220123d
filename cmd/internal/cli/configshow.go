package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/sandbox"
)

func init() {
	register(&command{
		name:    "config",
		args:    "show [DIR] [--json] [-s FILE] [-t NAME]...",
		summary: "print the resolved policy and where each rule came from",
		run:     runConfig,
	})
}

// loadConfig is config.Load with the CLI's error shape: a config error that
// carries a hint prints it as "fence: hint: ...".
func loadConfig(opts config.Options) (*config.Resolved, error) {
	res, err := config.Load(opts)
	return res, configError(err)
}

// configError attaches the hint of a *config.Error, if any.
func configError(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) && ce.Hint != "" {
		return withHint(err, ce.Hint)
	}
	return err
}

// printNotices prints res's notices once, as "fence: NOTICE".
func printNotices(w io.Writer, res *config.Resolved) {
	for _, n := range res.Notices {
		fmt.Fprintf(w, "fence: %s\n", n)
	}
}

func runConfig(ctx context.Context, stdio Stdio, args []string) error {
	c := lookup("config")
	fs := newFlagSet(stdio, c)
	asJSON := fs.Bool("json", false, "print JSON")
	settings := fs.String("s", "", "resolve with `FILE` as the project layer, as 'fence -s FILE' would")
	var templates stringList
	fs.Var(&templates, "t", "add the built-in template `NAME`, as 'fence -t NAME' would (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || pos[0] != "show" {
		return usagef("usage: fence config show [DIR] [--json]")
	}
	if len(pos) > 2 {
		return usagef("fence config show: too many arguments")
	}
	opts := config.Options{Settings: *settings, Templates: templates}
	if len(pos) == 2 {
		opts.Dir = pos[1]
	}
	res, err := loadConfig(opts)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdio.Out, configJSON(res))
	}
	printNotices(stdio.Err, res)
	showConfig(stdio.Out, res)
	return nil
}

// configJSON is the --json form of `fence config show`.
func configJSON(res *config.Resolved) any {
	allow, deny := []string{}, []string{}
	for _, p := range res.Network.Allow {
		allow = append(allow, p.String())
	}
	for _, p := range res.Network.Deny {
		deny = append(deny, p.String())
	}
	return map[string]any{
		"root":       res.Root,
		"dir":        res.Dir,
		"configFile": res.ConfigFile,
		"trust":      res.Trust,
		"applied":    res.Applied,
		"chain":      res.Chain,
		"grants":     nonNil(res.Grants),
		"notices":    nonNil(res.Notices),
		"rules":      res.Rules,
		"sandbox":    policyJSON(res.Sandbox),
		"network":    map[string]any{"allowedDomains": allow, "deniedDomains": deny},
		"shell":      res.Shell,
	}
}

// policyJSON spells the sandbox policy with the config's camelCase keys, so
// the --json output does not depend on Go field names.
func policyJSON(p sandbox.Policy) map[string]any {
	ints := func(v []int) []int {
		if v == nil {
			return []int{}
		}
		return v
	}
	return map[string]any{
		"root":              p.Root,
		"allowWrite":        nonNil(p.AllowWrite),
		"denyWrite":         nonNil(p.DenyWrite),
		"denyRead":          nonNil(p.DenyRead),
		"allowGitConfig":    p.AllowGitConfig,
		"allowLocalBinding": p.AllowLocalBinding,
		"localOutbound":     ints(p.LocalOutbound),
		"publish":           ints(p.Publish),
		"envPass":           nonNil(p.EnvPass),
		"configFiles":       nonNil(p.ConfigFiles),
		"stateDirs":         nonNil(p.StateDirs),
		"shellDir":          p.ShellDir,
		"allowDegraded":     nonNil(p.AllowDegraded),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ruleKeys is the order `fence config show` prints rules in.
var ruleKeys = []string{
	"network.allowedDomains", "network.deniedDomains", "network.allowLocalBinding",
	"network.allowLocalOutbound", "network.publish",
	"filesystem.allowWrite", "filesystem.denyWrite", "filesystem.denyRead", "filesystem.allowGitConfig",
	"env.pass", "sandbox.allowDegraded", "shell.promptMarker", "shell.autoEnter",
}

func isPathKey(k string) bool {
	return strings.HasPrefix(k, "filesystem.") && k != "filesystem.allowGitConfig" || k == "shell.autoEnter"
}

// describeSource is one line of the chain: "project  .fence.toml (via ...)".
func describeSource(s config.Source) string {
	var what string
	switch {
	case s.Template != "":
		what = "template " + s.Template
	case s.File != "":
		what = config.DisplayPath(s.File)
	default:
		what = "built-in"
	}
	if !s.Exists {
		what += " (absent)"
	}
	if s.Via != "" {
		what += " (via " + displayVia(s.Via) + ")"
	}
	return fmt.Sprintf("%-8s %s", s.Layer, what)
}

func trustLine(res *config.Resolved) string {
	if res.Trust != config.NoProject && res.Trust != config.Named && sandbox.Inside() {
		// The trust store is hidden from the sandbox: what it says of
		// the project cannot be read here (it said "not trusted" of a
		// project running with its grants).
		return "not known inside a fence sandbox, where the trust store is hidden; run 'fence status' outside"
	}
	switch res.Trust {
	case config.NoProject:
		return "no project config"
	case config.Trusted:
		return "trusted"
	case config.Named:
		return "trusted (named with -s)"
	case config.Changed:
		if res.Applied {
			return "changed since 'fence allow' (applied: it only restricts)"
		}
		return "changed since 'fence allow': ignored until you run 'fence allow'"
	default:
		if res.Applied {
			return "not trusted (applied: it only restricts)"
		}
		return "not trusted: ignored until you run 'fence allow'"
	}
}

func showConfig(w io.Writer, res *config.Resolved) {
	root := config.Printable(res.Root)
	if root == "" {
		root = "none (no " + config.ProjectFile + " in " + config.DisplayPath(res.Dir) + " or above)"
	}
	fmt.Fprintf(w, "project root: %s\n", root)
	if res.ConfigFile != "" {
		fmt.Fprintf(w, "trust:        %s\n", trustLine(res))
	}
	fmt.Fprintln(w, "chain:")
	for _, s := range res.Chain {
		fmt.Fprintf(w, "  %s\n", describeSource(s))
	}
	byKey := map[string][]config.Rule{}
	for _, r := range res.Rules {
		byKey[r.Key] = append(byKey[r.Key], r)
	}
	width := 0
	val := func(r config.Rule) string {
		if isPathKey(r.Key) {
			return config.DisplayPath(r.Value)
		}
		return config.Printable(r.Value)
	}
	for _, r := range res.Rules {
		width = max(width, len(val(r)))
	}
	width = min(width, 48)
	for _, k := range ruleKeys {
		rules := byKey[k]
		if len(rules) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", k)
		for _, r := range rules {
			origin := r.Origin.String()
			if r.Ignored {
				origin += " (ignored: not trusted)"
			}
			fmt.Fprintf(w, "  %-*s  %s\n", width, val(r), origin)
		}
	}
	if len(res.Sandbox.LocalOutbound) > 0 {
		fmt.Fprintf(w, "\nlocal outbound ports now: %s\n", joinInts(res.Sandbox.LocalOutbound))
	}
	if len(res.Grants) > 0 && !res.Applied {
		fmt.Fprintf(w, "\n'fence allow' would grant: %s\n", strings.Join(res.Grants, ", "))
	}
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// displayVia shows a Source.Via "FILE:LINE" with FILE shortened.
func displayVia(via string) string {
	if i := strings.LastIndexByte(via, ':'); i > 0 {
		return config.DisplayPath(via[:i]) + via[i:]
	}
	return via
}
