// Package completions holds fence's shell completion scripts for bash, zsh
// and fish. They are kept by hand next to the command tree; the CLI fills in
// the built-in template names when it prints them.
package completions

import (
	_ "embed"
	"fmt"
	"strings"
)

//go:embed fence.bash
var bash string

//go:embed _fence
var zsh string

//go:embed fence.fish
var fish string

// Script returns the completion script for shell ("bash", "zsh" or "fish"),
// completing the template names given.
func Script(shell string, templates []string) (string, error) {
	var src string
	switch shell {
	case "bash":
		src = bash
	case "zsh":
		src = zsh
	case "fish":
		src = fish
	default:
		return "", fmt.Errorf("completions for %q: unknown shell (bash, zsh or fish)", shell)
	}
	var clean []string
	for _, t := range templates {
		// Template names are identifiers; anything else is left out
		// rather than quoted into three shells' syntaxes.
		if t != "" && strings.Trim(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
			clean = append(clean, t)
		}
	}
	return strings.ReplaceAll(src, "@TEMPLATES@", strings.Join(clean, " ")), nil
}
