package sandbox

import (
	"os"
	"strings"
	"testing"
)

// verifyNoCaps refuses a thread that kept something: the test process
// keeps the full bounding set (and, as root, every capability), and has
// no no_new_privs. The init's success case is every sandbox test's start.
func TestVerifyNoCapsRefuses(t *testing.T) {
	err := verifyNoCaps()
	if err == nil {
		t.Fatal("a thread with capabilities passed")
	}
	want := "capabilities left"
	if os.Geteuid() != 0 {
		want = "left in the bounding set" // no capabilities but these
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("reason %q, want one with %q", err, want)
	}
}
