package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fence-dev/fence/proxy"
)

func TestWatchDirs(t *testing.T) {
	base := t.TempDir()
	proj := filepath.Join(base, "proj")
	os.MkdirAll(filepath.Join(proj, "policy"), 0o755)
	got := watchDirs([]string{
		filepath.Join(proj, ".fence.toml"),                      // file (absent): its directory
		filepath.Join(proj, "policy"),                           // directory: itself
		filepath.Join(base, "home", ".local", "share", "trust"), // missing: nearest existing ancestor
		"relative/ignored",
		filepath.Join(proj, "policy", "base.toml"),
	})
	want := []string{base, proj, filepath.Join(proj, "policy")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("watchDirs = %q, want %q", got, want)
	}
}

func TestRelevant(t *testing.T) {
	paths := []string{"/p/.fence.toml", "/h/.local/share/fence/trust", "/h/.config/fence/config.toml"}
	for name, want := range map[string]bool{
		"/p/.fence.toml":                        true,
		"/p/.fence.toml.swp":                    false,
		"/p/build/out.o":                        false,
		"/p/node_modules":                       false,
		"/h/.local/share/fence/trust/abc":       true,
		"/h/.local/share/fence":                 true, // created: the trust dir may follow
		"/h/.config/fence/config.toml":          true,
		"/h/.config/fence/other.toml":           false,
		"/h/.config":                            true,
		"/h/.local/share/fence/trust-not-quite": false,
	} {
		if got := relevant(paths, name); got != want {
			t.Errorf("relevant(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestDiffRules(t *testing.T) {
	p := func(s string) proxy.Pattern { q, _ := proxy.ParsePattern(s); return q }
	a := proxy.Rules{Allow: []proxy.Pattern{p("a.example"), p("b.example")}, LocalOutbound: []int{5432}}
	b := proxy.Rules{Allow: []proxy.Pattern{p("a.example")}, Deny: []proxy.Pattern{p("t.example")}}
	if got, want := diffRules(a, b), "-allow b.example, +deny t.example, -local-outbound 5432"; got != want {
		t.Errorf("diffRules = %q, want %q", got, want)
	}
}
