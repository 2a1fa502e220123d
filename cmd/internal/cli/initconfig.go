package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fence-dev/fence/cmd/internal/config"
)

func init() {
	register(&command{
		name:    "init",
		args:    "[--template NAME]... [--list] [--no-detect]",
		summary: "write a commented starter .fence.toml in the current directory",
		run:     runInit,
	})
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runInit(ctx context.Context, stdio Stdio, args []string) error {
	fs := newFlagSet(stdio, lookup("init"))
	var templates stringList
	fs.Var(&templates, "template", "extend the built-in template `NAME` (repeatable; see --list)")
	fs.Var(&templates, "t", "short for --template")
	list := fs.Bool("list", false, "list the built-in templates")
	noDetect := fs.Bool("no-detect", false, "without --template, do not pick templates from the files present (package.json, go.mod, ...)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("fence init: unexpected argument %q (it writes in the current directory)", pos[0])
	}
	if *list {
		for _, t := range config.Templates() {
			fmt.Fprintf(stdio.Out, "%-8s %s\n", t, config.TemplateSummary(t))
		}
		return nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if len(templates) == 0 && !*noDetect {
		var why []string
		templates, why = detectTemplates(wd)
		if len(templates) > 0 {
			fmt.Fprintf(stdio.Out, "extending %s (found %s; --no-detect to skip)\n", strings.Join(templates, ", "), strings.Join(why, ", "))
		}
	}
	for _, t := range templates {
		if _, ok := config.Template(t); !ok {
			return withHint(fmt.Errorf("unknown template %q", t),
				"built-in templates: "+strings.Join(config.Templates(), ", ")+" (fence init --list)")
		}
	}
	path := filepath.Join(wd, config.ProjectFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return withHint(fmt.Errorf("%s already exists; not overwriting it", config.ProjectFile),
			"edit it, or remove it first; 'fence config show' prints what it resolves to")
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", config.ProjectFile, err)
	}
	_, err = f.WriteString(starterConfig(templates))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", config.ProjectFile, err)
	}
	fmt.Fprintf(stdio.Out, "wrote %s\n", config.ProjectFile)
	fmt.Fprintln(stdio.Out, "review it, then run 'fence allow' to trust it ('fence config show' prints the resolved policy)")
	return nil
}

// starterConfig is the commented .fence.toml `fence init` writes. It must
// load without error (tested) and grant only writes to the project itself
// plus what the chosen templates grant.
func starterConfig(templates []string) string {
	var b strings.Builder
	b.WriteString(`# fence policy for this directory (https://github.com/fence-dev/fence).
# Anything that loosens your user policy takes effect only after 'fence allow';
# run it again after every change that grants more. 'fence config show' prints
# the resolved policy and where each rule comes from.

`)
	quoted := make([]string, len(templates))
	for i, t := range templates {
		quoted[i] = strconv.Quote(t)
	}
	fmt.Fprintf(&b, "# Built-in templates (fence init --list) and local TOML files (./base.toml).\nextends = [%s]\n", strings.Join(quoted, ", "))
	b.WriteString(`
[network]
# Hosts programs may reach through fence's proxy: "example.com",
# "*.example.com" (subdomains only), "10.0.0.5", optional ":port"
# (without one, 443 and 80). Everything else is blocked.
allowedDomains = []
# deniedDomains = ["telemetry.example.com"]  # wins over allowedDomains
# allowLocalBinding = true                   # let programs listen on ports
# allowLocalOutbound = [5432, 6379]          # host loopback ports to reach (true: all)
# publish = [3000]                           # expose sandbox ports on the host's 127.0.0.1

[filesystem]
# Writable paths; relative paths are relative to this file's directory, "~" is
# your home. Globs: "*", "?", "[a-z]" within a name, "**" for any depth.
allowWrite = ["."]
# denyWrite = ["dist/secrets"]               # wins over allowWrite
# denyRead = [".env.production"]             # added to fence's built-in list (~/.ssh, ~/.aws, ...)
# allowGitConfig = false                     # keep .git/config read-only

# [env]
# pass = ["NPM_TOKEN"]                       # variables fence would otherwise strip
`)
	return b.String()
}

// detectTemplates picks templates from the package manager files in dir,
// returning the templates and the files that suggested them.
func detectTemplates(dir string) (templates, why []string) {
	for _, d := range []struct{ file, template string }{
		{"package.json", "npm"},
		{"go.mod", "go"},
		{"Cargo.toml", "cargo"},
		{"pyproject.toml", "pip"},
		{"requirements.txt", "pip"},
		{"setup.py", "pip"},
	} {
		if _, err := os.Stat(filepath.Join(dir, d.file)); err != nil {
			continue
		}
		why = append(why, d.file)
		if !slices.Contains(templates, d.template) {
			templates = append(templates, d.template)
		}
	}
	return templates, why
}
