package config

import (
	"strings"
	"testing"
)

// TestDefaultDenyRead: defaultRules expands the built-in paths without
// validating them; each must be a "~/" path that expandPath accepts and
// expands the same way, also under a home directory with glob characters.
func TestDefaultDenyRead(t *testing.T) {
	for _, h := range []string{"/home/u", "/home/we[ir]d*?home", "/"} {
		t.Setenv("HOME", h)
		r := defaultRules()
		if len(r.DenyRead) != len(defaultDenyRead) {
			t.Fatalf("HOME=%s: %d rules for %d paths", h, len(r.DenyRead), len(defaultDenyRead))
		}
		for i, p := range defaultDenyRead {
			if !strings.HasPrefix(p, "~/") {
				t.Errorf("built-in path %q does not start with ~/", p)
			}
			want, err := expandPath(p, h)
			if err != nil {
				t.Errorf("built-in path %q: %v", p, err)
				continue
			}
			if got := r.DenyRead[i].Value; got != want {
				t.Errorf("HOME=%s: %q expands to %q, expandPath says %q", h, p, got, want)
			}
		}
	}
}
