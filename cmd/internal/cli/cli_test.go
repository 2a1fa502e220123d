package cli

import (
	"strings"
	"testing"
)

// RunsCommand is what main uses to leave signal handling to runCommand:
// it must agree with Main's dispatch.
func TestRunsCommand(t *testing.T) {
	for args, want := range map[string]bool{
		"-- true": true, "-c x": true, "-d -- true": true, "-s f -- true": true,
		"": false, "-h": false, "--help": false, "help": false, "shell": false, "daemon status": false,
	} {
		if got := RunsCommand(strings.Fields(args)); got != want {
			t.Errorf("RunsCommand(%q) = %v, want %v", args, got, want)
		}
	}
}
