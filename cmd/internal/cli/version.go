package cli

import (
	"context"
	"fmt"
	"runtime/debug"
)

func init() {
	register(&command{
		name:    "version",
		summary: "print fence's version",
		run: func(ctx context.Context, stdio Stdio, args []string) error {
			fs := newFlagSet(stdio, lookup("version"))
			if _, err := parseInterspersed(fs, args); err != nil {
				return err
			}
			fmt.Fprintln(stdio.Out, "fence", Version())
			return nil
		},
	})
}

// Version returns the module version and VCS revision from the build info,
// e.g. "v0.1.0 (3f2a9c1, modified)" or "(devel)".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		v += " (" + rev + modified + ")"
	}
	return v
}
