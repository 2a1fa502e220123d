package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/sandbox"
)

func init() {
	register(&command{
		name:    "doctor",
		args:    "[--json]",
		summary: "check the kernel and environment; say what is missing and how to fix it",
		run:     runDoctor,
	})
}

// runDoctor prints one line per check, with the fix under each failing
// one, and fails (exit 125) when a required layer is missing: that is
// exactly when sessions refuse to start.
func runDoctor(ctx context.Context, stdio Stdio, args []string) error {
	fs := newFlagSet(stdio, lookup("doctor"))
	asJSON := fs.Bool("json", false, "print the checks as JSON")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	checks := sandbox.Diagnose()
	if *asJSON {
		enc := json.NewEncoder(stdio.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(checks); err != nil {
			return err
		}
	}
	failed := 0
	var degradable []string // the failed layers allowDegraded may accept
	for _, c := range checks {
		mark := "ok  "
		if !c.OK {
			mark = "warn"
			if c.Required {
				mark = "FAIL"
				failed++
				if slices.Contains(config.DegradableLayers, c.Name) {
					degradable = append(degradable, strconv.Quote(c.Name))
				}
			}
		}
		if !*asJSON {
			fmt.Fprintf(stdio.Out, "%s %-24s %s\n", mark, c.Name, c.Detail)
			if c.Fix != "" && (!c.OK || c.Name == "dev.tty.legacy_tiocsti") {
				fmt.Fprintf(stdio.Out, "     %-24s fix: %s\n", "", c.Fix)
			}
		}
	}
	if len(checks) == 0 {
		fmt.Fprintln(stdio.Out, "fence doctor: no sandbox checks on this operating system")
	}
	if failed > 0 {
		hint := "fix the lines marked FAIL"
		if len(degradable) > 0 {
			hint += fmt.Sprintf(", or accept a weaker mode in %s: [sandbox] allowDegraded = [%s]", config.UserConfigFile(), strings.Join(degradable, ", "))
		}
		return &exitError{code: ExitFenceFailed, err: withHint(
			fmt.Errorf("%d required sandbox layer(s) missing: sandboxed sessions will refuse to start", failed), hint)}
	}
	return nil
}
