package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fence-dev/fence/proxy"
)

// testEnv gives a test its own HOME, XDG dirs and system policy path.
func testEnv(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	d, _ = filepath.EvalSymlinks(d)
	t.Setenv("HOME", filepath.Join(d, "home"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(d, "home/.config"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(d, "home/.local/share"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(d, "home/.local/state"))
	old := SystemPolicyFile
	SystemPolicyFile = filepath.Join(d, "etc/fence/policy.toml")
	t.Cleanup(func() { SystemPolicyFile = old })
	return d
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindRoot(t *testing.T) {
	d := testEnv(t)
	write(t, filepath.Join(d, "p/.fence.toml"), "[network]\n")
	os.MkdirAll(filepath.Join(d, "p/a/b"), 0o755)
	os.MkdirAll(filepath.Join(d, "q"), 0o755)
	for _, tc := range []struct {
		dir, root string
		ok        bool
	}{
		{"p", "p", true},
		{"p/a/b", "p", true},
		{"q", "", false},
	} {
		root, ok := FindRoot(filepath.Join(d, tc.dir))
		want := ""
		if tc.ok {
			want = filepath.Join(d, tc.root)
		}
		if ok != tc.ok || root != want {
			t.Errorf("FindRoot(%s) = %q, %v; want %q, %v", tc.dir, root, ok, want, tc.ok)
		}
	}
}

func TestDirs(t *testing.T) {
	d := testEnv(t)
	if got, want := ConfigDir(), filepath.Join(d, "home/.config/fence"); got != want {
		t.Errorf("ConfigDir = %q, want %q", got, want)
	}
	t.Setenv("XDG_DATA_HOME", "relative/ignored")
	if got, want := DataDir(), filepath.Join(d, "home/.local/share/fence"); got != want {
		t.Errorf("DataDir with relative XDG_DATA_HOME = %q, want %q", got, want)
	}
	t.Setenv("XDG_STATE_HOME", "")
	if got, want := StateDir(), filepath.Join(d, "home/.local/state/fence"); got != want {
		t.Errorf("StateDir = %q, want %q", got, want)
	}
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1234")
	if got := RuntimeDir(); got != "/run/user/1234/fence" {
		t.Errorf("RuntimeDir = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line, col int
		msg       string
	}{
		{"unknown key", "[network]\n  allowedDomain = []\n", 2, 3, `unknown key "allowedDomain" in [network] (did you mean "allowedDomains"?)`},
		{"quoted unknown key", "[network]\n\"allowedDomain\" = []\n", 2, 1, `unknown key "allowedDomain"`},
		{"dotted unknown table", "x = 1\nnetwrok.allowedDomains = []\n", 1, 1, `unknown key "x" at the top level`},
		{"dotted unknown table 2", "netwrok.allowedDomains = []\n", 1, 1, `unknown key "netwrok" at the top level (did you mean [network]?)`},
		{"inline table element", "network = { allowedDomains = [\"a.com\", 'b..c'] }\n", 1, 40, `domain pattern "b..c"`},
		{"element on later line", "[network]\nallowedDomains = [\n  \"ok.example\", # fine\n  \"*\",\n]\n", 4, 3, `"*" alone is not allowed`},
		{"multiline string before", "[network]\nallowedDomains = [\"\"\"a.example\"\"\", 5]\n", 2, 36, "element 2 must be a string"},
		{"bad port type", "[network]\npublish = [\"3000\"]\n", 2, 12, "element 1 must be a port number, got a string"},
		{"float port", "[network]\npublish = [30.5]\n", 2, 12, "got a float"},
		{"local outbound false ok then bad", "[network]\nallowLocalOutbound = 3\n", 2, 22, "must be an array of ports or true"},
		{"array of tables", "[[network]]\nallowedDomains = []\n", 1, 1, `"network" must be a table`},
		{"empty", "", 1, 1, "empty config"},
		{"whitespace", "\n\n   \n", 1, 1, "empty config"},
		{"duplicate", "[env]\npass = []\npass = [\"A\"]\n", 3, 1, `duplicate key "env.pass"`},
		{"user table", "[sandbox]\nallowDegraded = []\n", 1, 2, "[sandbox] is only allowed in the user config"},
		{"double star inside segment", "[filesystem]\ndenyRead = [\"a**b\"]\n", 2, 13, `"**" must be a whole path segment`},
		{"empty path", "[filesystem]\nallowWrite = [\"\"]\n", 2, 15, "empty path"},
		{"utf8", "[network]\nallowedDomains = [\"\xc3\"]\n", 2, 20, "invalid UTF-8"},
		{"carriage return in a path", "[filesystem]\nallowWrite = [\"~\", \"./b\\rX\"]\n", 2, 20, `control character U+000D in "./b\rX"`},
		{"escape in a domain", "[network]\nallowedDomains = [\"a\\u001b.com\"]\n", 2, 19, "control character U+001B"},
		{"bidi override", "[filesystem]\ndenyRead = [\"a\\u202eb\"]\n", 2, 13, "U+202E"},
		{"tab in extends", "extends = [\"a\\tb.toml\"]\n", 1, 12, "U+0009"},
		{"C1 in env", "[env]\npass = [\"A\\u009b\"]\n", 2, 9, "U+009B"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRules("/p/.fence.toml", "/p", LayerProject, []byte(tc.src), false)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Line != tc.line || e.Col != tc.col || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got %d:%d: %s\nwant %d:%d: ...%s...", e.Line, e.Col, e.Msg, tc.line, tc.col, tc.msg)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	src := `extends = ["npm"]
[network]
allowedDomains = ["Example.COM.", "*.github.com", "github.com:22", "10.0.0.1", "[::1]:8080"]
deniedDomains = []
allowLocalBinding = false
allowLocalOutbound = true
publish = [3000, 8080]
[filesystem]
allowWrite = [".", "~/.cache/x", "/abs/path", "sub/../other"]
denyWrite = ["dist/**/secret*"]
denyRead = ["~"]
allowGitConfig = true
[env]
pass = ["NPM_TOKEN", "_X1"]
`
	r, err := parseRules("/p/.fence.toml", "/p", LayerProject, []byte(src), false)
	if err != nil {
		t.Fatal(err)
	}
	var writes []string
	for _, it := range r.AllowWrite {
		writes = append(writes, it.Value)
	}
	h := home()
	want := []string{"/p", h + "/.cache/x", "/abs/path", "/p/other"}
	if !slices.Equal(writes, want) {
		t.Errorf("allowWrite = %q, want %q", writes, want)
	}
	if r.DenyRead[0].Value != h {
		t.Errorf("denyRead ~ = %q", r.DenyRead[0].Value)
	}
	if !r.LocalOutboundAll.Value || r.AllowLocalBinding.Value || !r.AllowGitConfig.Value {
		t.Errorf("booleans: %+v %+v %+v", r.LocalOutboundAll, r.AllowLocalBinding, r.AllowGitConfig)
	}
	if len(r.Publish) != 2 || r.Publish[1].Value != 8080 || r.Publish[1].Line != 7 || r.Publish[1].Col != 18 {
		t.Errorf("publish = %+v", r.Publish)
	}
	if d := r.AllowedDomains[4]; d.Line != 3 || d.Col != 80 {
		t.Errorf("position of %q = %d:%d, want 3:80", d.Value, d.Line, d.Col)
	}
}

func TestTemplatesParse(t *testing.T) {
	names := Templates()
	for _, want := range []string{"npm", "pip", "go", "cargo", "github"} {
		if !slices.Contains(names, want) {
			t.Errorf("template %q missing from %q", want, names)
		}
	}
	for _, n := range names {
		b, _ := Template(n)
		if _, err := parseRules("template:"+n, "/p", LayerProject, b, false); err != nil {
			t.Errorf("template %s: %v", n, err)
		}
		if TemplateSummary(n) == "" {
			t.Errorf("template %s has no summary comment", n)
		}
	}
	if _, ok := Template("../config"); ok {
		t.Error("Template accepted a path")
	}
}

func TestLoadLayers(t *testing.T) {
	d := testEnv(t)
	write(t, SystemPolicyFile, "[network]\ndeniedDomains = [\"blocked.example\"]\n[filesystem]\ndenyRead = [\"/srv/secret\"]\n")
	write(t, UserConfigFile(), "[network]\nallowedDomains = [\"user.example\"]\nallowLocalBinding = true\n[filesystem]\nallowWrite = [\"cache\"]\n[shell]\npromptMarker = false\nautoEnter = [\"~/src/*\"]\n[sandbox]\nallowDegraded = [\"landlock\"]\n")
	proj := filepath.Join(d, "proj")
	write(t, filepath.Join(proj, ".fence.toml"), "extends = [\"conf/base.toml\"]\n[network]\nallowedDomains = [\"blocked.example\", \"proj.example\"]\npublish = [3000]\n[filesystem]\nallowWrite = [\".\"]\n")
	write(t, filepath.Join(proj, "conf/base.toml"), "[filesystem]\ndenyWrite = [\"out\"]\n[env]\npass = [\"SSH_AUTH_SOCK\"]\n")
	os.MkdirAll(filepath.Join(proj, "sub"), 0o755)

	res, err := Load(Options{Dir: filepath.Join(proj, "sub")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Root != proj || res.Trust != Untrusted || res.Applied {
		t.Fatalf("root %q trust %v applied %v", res.Root, res.Trust, res.Applied)
	}
	if len(res.Notices) == 0 || !strings.Contains(res.Notices[0], "+net proj.example") {
		t.Errorf("notices = %q", res.Notices)
	}
	// Untrusted: user layer only.
	if got := patterns(res.Network.Allow); !slices.Equal(got, []string{"user.example"}) {
		t.Errorf("untrusted allow = %q", got)
	}
	if err := Allow(res); err != nil {
		t.Fatal(err)
	}
	res, err = Load(Options{Dir: filepath.Join(proj, "sub")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Trust != Trusted || !res.Applied || len(res.Notices) != 0 {
		t.Fatalf("trust %v applied %v notices %q", res.Trust, res.Applied, res.Notices)
	}
	p := res.Sandbox
	if p.Root != proj {
		t.Errorf("Sandbox.Root = %q", p.Root)
	}
	if got := patterns(res.Network.Allow); !slices.Equal(got, []string{"user.example", "blocked.example", "proj.example"}) {
		t.Errorf("allow = %q", got)
	}
	if got := patterns(res.Network.Deny); !slices.Equal(got, []string{"blocked.example"}) {
		t.Errorf("deny = %q (the system deny must stay)", got)
	}
	wantWrite := []string{filepath.Join(ConfigDir(), "cache"), proj}
	if !slices.Equal(p.AllowWrite, wantWrite) {
		t.Errorf("AllowWrite = %q, want %q (user paths relative to the user config's dir)", p.AllowWrite, wantWrite)
	}
	if !slices.Equal(p.DenyWrite, []string{filepath.Join(proj, "conf/out")}) {
		t.Errorf("DenyWrite = %q (relative to the extended file's dir)", p.DenyWrite)
	}
	if !slices.Contains(p.DenyRead, "/srv/secret") || !slices.Contains(p.DenyRead, filepath.Join(home(), ".ssh")) {
		t.Errorf("DenyRead = %q", p.DenyRead)
	}
	if !p.AllowLocalBinding || !slices.Equal(p.Publish, []int{3000}) || !slices.Equal(p.EnvPass, []string{"SSH_AUTH_SOCK"}) {
		t.Errorf("binding %v publish %v env %v", p.AllowLocalBinding, p.Publish, p.EnvPass)
	}
	if !slices.Equal(p.AllowDegraded, []string{"landlock"}) {
		t.Errorf("AllowDegraded = %q", p.AllowDegraded)
	}
	for _, f := range []string{SystemPolicyFile, UserConfigFile(), filepath.Join(proj, ".fence.toml"), filepath.Join(proj, "conf/base.toml")} {
		if !slices.Contains(p.ConfigFiles, f) {
			t.Errorf("ConfigFiles %q lacks %s", p.ConfigFiles, f)
		}
	}
	for _, f := range []string{ConfigDir(), DataDir(), StateDir()} {
		if !slices.Contains(p.StateDirs, f) {
			t.Errorf("StateDirs %q lacks %s", p.StateDirs, f)
		}
	}
	if res.Shell.PromptMarker || !res.Shell.AutoEnters(filepath.Join(home(), "src/thing")) || res.Shell.AutoEnters(filepath.Join(home(), "src/a/b")) {
		t.Errorf("shell = %+v", res.Shell)
	}
	// Origins.
	var found bool
	for _, r := range res.Rules {
		if r.Key == "filesystem.denyWrite" {
			found = true
			if r.Origin.Layer != LayerProject || r.Origin.File != filepath.Join(proj, "conf/base.toml") || r.Origin.Line != 2 {
				t.Errorf("origin of denyWrite = %+v", r.Origin)
			}
		}
	}
	if !found {
		t.Error("no denyWrite rule in Rules")
	}
}

func patterns(ps []proxy.Pattern) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return s
}

func TestLoadSettingsAndTemplates(t *testing.T) {
	d := testEnv(t)
	write(t, filepath.Join(d, "policies/ci.toml"), "[filesystem]\nallowWrite = [\"out\"]\n")
	os.MkdirAll(filepath.Join(d, "work"), 0o755)
	res, err := Load(Options{Dir: filepath.Join(d, "work"), Settings: filepath.Join(d, "policies/ci.toml"), Templates: []string{"go"}, Publish: []int{8080}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Trust != Named || !res.Applied || res.Root != "" || res.Sandbox.Root != filepath.Join(d, "work") {
		t.Fatalf("trust %v applied %v root %q sandbox root %q", res.Trust, res.Applied, res.Root, res.Sandbox.Root)
	}
	if !slices.Contains(res.Sandbox.AllowWrite, filepath.Join(d, "policies/out")) {
		t.Errorf("AllowWrite = %q: -s paths are relative to the file", res.Sandbox.AllowWrite)
	}
	if !slices.Contains(patternStrings(res), "proxy.golang.org") {
		t.Errorf("-t go not applied: %q", patternStrings(res))
	}
	if !slices.Equal(res.Sandbox.Publish, []int{8080}) || !res.Sandbox.AllowLocalBinding {
		t.Errorf("publish %v binding %v", res.Sandbox.Publish, res.Sandbox.AllowLocalBinding)
	}
	if _, err := Load(Options{Dir: d, Templates: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "unknown template") {
		t.Errorf("unknown -t: %v", err)
	}
	if _, err := Load(Options{Dir: d, Settings: filepath.Join(d, "missing.toml")}); err == nil {
		t.Error("missing -s file: no error")
	}
}

func patternStrings(res *Resolved) []string {
	var s []string
	for _, p := range res.Network.Allow {
		s = append(s, p.String())
	}
	return s
}

func TestSymlinksAndGlobs(t *testing.T) {
	d := testEnv(t)
	proj := filepath.Join(d, "proj")
	os.MkdirAll(filepath.Join(proj, "real/cache"), 0o755)
	os.Symlink("real", filepath.Join(proj, "link"))
	for _, f := range []string{"a/.env", "a/b/.env", "a/b/c/.env.local", "a/b/keep.txt", ".env"} {
		write(t, filepath.Join(proj, f), "x")
	}
	write(t, filepath.Join(proj, ".fence.toml"), "[filesystem]\nallowWrite = [\"link/cache\", \"link/new\"]\ndenyRead = [\"**/.env*\"]\ndenyWrite = [\"a/*/keep.txt\", \"nomatch/*\"]\n")
	res, err := Load(Options{Dir: proj})
	if err != nil {
		t.Fatal(err)
	}
	Allow(res)
	res, _ = Load(Options{Dir: proj})
	p := res.Sandbox
	if want := []string{filepath.Join(proj, "real/cache"), filepath.Join(proj, "real/new")}; !slices.Equal(p.AllowWrite, want) {
		t.Errorf("AllowWrite = %q, want %q (symlinks resolved, also for paths that do not exist yet)", p.AllowWrite, want)
	}
	for _, f := range []string{".env", "a/.env", "a/b/.env", "a/b/c/.env.local"} {
		if !slices.Contains(p.DenyRead, filepath.Join(proj, f)) {
			t.Errorf("DenyRead lacks %s: %q", f, p.DenyRead)
		}
	}
	if !slices.Equal(p.DenyWrite, []string{filepath.Join(proj, "a/b/keep.txt")}) {
		t.Errorf("DenyWrite = %q", p.DenyWrite)
	}
}

func TestMatchPath(t *testing.T) {
	for _, tc := range []struct {
		pat, p string
		want   bool
	}{
		{"/home/u/src/*", "/home/u/src/x", true},
		{"/home/u/src/*", "/home/u/src/x/y", false},
		{"/home/u/src/*", "/home/u/src", false},
		{"/home/u/src/**", "/home/u/src", true},
		{"/home/u/src/**", "/home/u/src/a/b/c", true},
		{"/a/**/b", "/a/b", true},
		{"/a/**/b", "/a/x/y/b", true},
		{"/a/**/b", "/a/x/y/c", false},
		{"/a/[xy]?", "/a/xz", true},
		{"/a/*.env", "/a/.env", true},
	} {
		if got := MatchPath(tc.pat, tc.p); got != tc.want {
			t.Errorf("MatchPath(%q, %q) = %v, want %v", tc.pat, tc.p, got, tc.want)
		}
	}
}

func TestSubset(t *testing.T) {
	base := &policySet{
		AllowDomains:  []string{"*.example.com", "a.org", "b.org:8443"},
		DenyDomains:   []string{"bad.example.com"},
		AllowWrite:    []string{"/p", "/p/cache"},
		DenyRead:      []string{"/p/.env"},
		Publish:       []int{3000},
		LocalOutbound: []int{5432},
	}
	for _, tc := range []struct {
		name string
		mod  func(s *policySet)
		want bool
	}{
		{"same", func(s *policySet) {}, true},
		{"drop allow", func(s *policySet) { s.AllowDomains = s.AllowDomains[:1] }, true},
		{"narrow wildcard", func(s *policySet) { s.AllowDomains = []string{"*.x.example.com", "*.api.example.com:443"} }, true},
		// An exact entry reaches private addresses, a wildcard does not
		// (proxy.Verdict.Exact): no wildcard covers it.
		{"exact under wildcard", func(s *policySet) { s.AllowDomains = []string{"api.example.com"} }, false},
		{"exact kept", func(s *policySet) { s.AllowDomains = []string{"a.org:443", "b.org:8443"} }, true},
		{"apex not under wildcard", func(s *policySet) { s.AllowDomains = []string{"example.com"} }, false},
		{"new domain", func(s *policySet) { s.AllowDomains = append(s.AllowDomains, "c.org") }, false},
		{"other port", func(s *policySet) { s.AllowDomains = []string{"a.org:22"} }, false},
		{"default port explicit", func(s *policySet) { s.AllowDomains = []string{"a.org:443"} }, true},
		{"add deny", func(s *policySet) { s.DenyDomains = append(s.DenyDomains, "x.org") }, true},
		{"drop deny", func(s *policySet) { s.DenyDomains = nil }, false},
		{"drop denyRead", func(s *policySet) { s.DenyRead = nil }, false},
		{"write under allowed", func(s *policySet) { s.AllowWrite = []string{"/p/sub"} }, true},
		{"write outside", func(s *policySet) { s.AllowWrite = []string{"/q"} }, false},
		{"write prefix trick", func(s *policySet) { s.AllowWrite = []string{"/px"} }, false},
		{"binding", func(s *policySet) { s.AllowLocalBinding = true }, false},
		{"git config", func(s *policySet) { s.AllowGitConfig = true }, false},
		{"outbound all", func(s *policySet) { s.LocalOutboundAll = true }, false},
		{"outbound other", func(s *policySet) { s.LocalOutbound = []int{6379} }, false},
		{"publish other", func(s *policySet) { s.Publish = []int{3001} }, false},
		{"env", func(s *policySet) { s.EnvPass = []string{"X"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := *base
			s.AllowDomains = slices.Clone(base.AllowDomains)
			s.DenyDomains = slices.Clone(base.DenyDomains)
			tc.mod(&s)
			if got := s.subsetOf(base); got != tc.want {
				t.Errorf("subsetOf = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGrantsExactUnderWildcard: an exact entry under a wildcard the user
// already allows is a grant (it lets the name reach private addresses),
// and `fence allow` says so; a narrower wildcard is none.
func TestGrantsExactUnderWildcard(t *testing.T) {
	base := &policySet{AllowDomains: []string{"*.wild.test:42005"}}
	full := &policySet{AllowDomains: []string{"*.wild.test:42005", "priv6.wild.test:42005", "*.sub.wild.test:42005", "other.test"}}
	got := grants(base, full, "/p", "/p")
	want := []string{"+net priv6.wild.test:42005 (exact entry: may also reach private addresses)", "+net other.test"}
	if !slices.Equal(got, want) {
		t.Errorf("grants = %q, want %q", got, want)
	}
}

func TestListeningPorts(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only implemented on Linux")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ports, err := listeningPorts()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ports, port) {
		t.Errorf("listeningPorts() = %v, lacks %d", ports, port)
	}
	d := testEnv(t)
	write(t, filepath.Join(d, "p/.fence.toml"), "[network]\nallowLocalOutbound = true\n")
	res, err := Load(Options{Dir: filepath.Join(d, "p")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied {
		t.Fatal("untrusted allowLocalOutbound applied")
	}
	Allow(res)
	res, _ = Load(Options{Dir: filepath.Join(d, "p")})
	if !slices.Contains(res.Sandbox.LocalOutbound, port) || !slices.Contains(res.Network.LocalOutbound, port) {
		t.Errorf("LocalOutbound = %v / %v, lacks %d", res.Sandbox.LocalOutbound, res.Network.LocalOutbound, port)
	}
}

func TestExtendsErrors(t *testing.T) {
	d := testEnv(t)
	write(t, filepath.Join(d, "p/.fence.toml"), "extends = [\"a.toml\"]\n")
	write(t, filepath.Join(d, "p/a.toml"), "extends = [\"npm\", \"a.toml\"]\n")
	_, err := Load(Options{Dir: filepath.Join(d, "p")})
	var e *Error
	if !errors.As(err, &e) || e.File != filepath.Join(d, "p/a.toml") || e.Line != 1 || e.Col != 19 || !strings.Contains(e.Msg, "cycle") {
		t.Errorf("self-extend: %#v", err)
	}
}

// BenchmarkLoad measures resolving a typical trusted project (template,
// local extends, user config), the cost every 'fence --' and every live
// reload pays.
func BenchmarkLoad(b *testing.B) {
	d := b.TempDir()
	b.Setenv("HOME", filepath.Join(d, "home"))
	b.Setenv("XDG_CONFIG_HOME", filepath.Join(d, "home/.config"))
	b.Setenv("XDG_DATA_HOME", filepath.Join(d, "home/.local/share"))
	proj := filepath.Join(d, "proj")
	for f, c := range map[string]string{
		filepath.Join(d, "home/.config/fence/config.toml"): "[network]\nallowedDomains = [\"api.internal\"]\n",
		filepath.Join(proj, ".fence.toml"):                 "extends = [\"npm\", \"github\", \"base.toml\"]\n[network]\nallowedDomains = [\"example.com\"]\n[filesystem]\nallowWrite = [\".\"]\ndenyRead = [\".env\"]\n",
		filepath.Join(proj, "base.toml"):                   "[network]\ndeniedDomains = [\"evil.example\"]\n",
	} {
		os.MkdirAll(filepath.Dir(f), 0o755)
		os.WriteFile(f, []byte(c), 0o644)
	}
	res, err := Load(Options{Dir: proj})
	if err != nil {
		b.Fatal(err)
	}
	Allow(res)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Load(Options{Dir: proj}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTrustThroughSymlink(t *testing.T) {
	d := testEnv(t)
	write(t, filepath.Join(d, "real/.fence.toml"), "[network]\nallowedDomains = [\"a.example\"]\n")
	os.Symlink(filepath.Join(d, "real"), filepath.Join(d, "link"))
	res, err := Load(Options{Dir: filepath.Join(d, "link")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Root != filepath.Join(d, "link") {
		t.Errorf("Root = %q: the root stays the path the user is in", res.Root)
	}
	if err := Allow(res); err != nil {
		t.Fatal(err)
	}
	res, _ = Load(Options{Dir: filepath.Join(d, "real")})
	if res.Trust != Trusted {
		t.Errorf("trust through the real path = %v, want trusted", res.Trust)
	}
	if was, _ := Deny(filepath.Join(d, "real")); !was {
		t.Error("Deny through the real path found nothing")
	}
	res, _ = Load(Options{Dir: filepath.Join(d, "link")})
	if res.Trust != Untrusted {
		t.Errorf("after deny: %v", res.Trust)
	}
}

func TestSpecialFiles(t *testing.T) {
	d := testEnv(t)
	proj := filepath.Join(d, "fifo")
	os.MkdirAll(proj, 0o755)
	if err := syscallMkfifo(filepath.Join(proj, ".fence.toml")); err != nil {
		t.Skip("mkfifo:", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Load(Options{Dir: proj})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO config: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load blocked on a FIFO .fence.toml")
	}
	dev := filepath.Join(d, "dev")
	os.MkdirAll(dev, 0o755)
	os.Symlink("/dev/zero", filepath.Join(dev, ".fence.toml"))
	if _, err := Load(Options{Dir: dev}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero config: %v", err)
	}
}

func TestGlobBounds(t *testing.T) {
	d := testEnv(t)
	for i := range 50 {
		write(t, filepath.Join(d, "tree", strconv.Itoa(i), "f"), "x")
	}
	budget := 20
	got, truncated := expandGlob(filepath.Join(d, "tree/**/f"), &budget)
	if !truncated || len(got) >= 50 {
		t.Errorf("visit budget: %d matches, truncated %v", len(got), truncated)
	}
	budget = maxGlobVisits
	got, truncated = expandGlob(filepath.Join(d, "tree/*/f"), &budget)
	if truncated || len(got) != 50 {
		t.Errorf("%d matches, truncated %v; want 50, false", len(got), truncated)
	}
}

func TestDefaults(t *testing.T) {
	d := testEnv(t)
	res, err := Load(Options{Dir: d})
	if err != nil {
		t.Fatal(err)
	}
	if res.Root != "" || res.Trust != NoProject || res.Sandbox.Root != d {
		t.Errorf("root %q trust %v sandbox root %q", res.Root, res.Trust, res.Sandbox.Root)
	}
	p := res.Sandbox
	if len(res.Network.Allow) != 0 || len(p.AllowWrite) != 0 || p.AllowLocalBinding || len(p.LocalOutbound) != 0 || len(p.Publish) != 0 {
		t.Errorf("defaults grant something: %+v %+v", res.Network, p)
	}
	h := home()
	for _, want := range []string{".ssh", ".gnupg", ".aws", ".config/gcloud", ".kube", ".docker/config.json", ".netrc", ".git-credentials", ".mozilla", ".config/google-chrome", ".config/chromium"} {
		if !slices.Contains(p.DenyRead, filepath.Join(h, want)) {
			t.Errorf("default DenyRead lacks ~/%s", want)
		}
	}
	if !res.Shell.PromptMarker {
		t.Error("prompt marker off by default")
	}
	if len(res.Notices) != 0 || len(res.Grants) != 0 {
		t.Errorf("notices %q grants %q", res.Notices, res.Grants)
	}
}

func TestTrustRecording(t *testing.T) {
	d := testEnv(t)
	proj := filepath.Join(d, "p")
	cfg := filepath.Join(proj, ".fence.toml")
	write(t, cfg, "[network]\nallowedDomains = [\"a.example\", \"b.example\"]\ndeniedDomains = [\"x.example\"]\n")
	res, _ := Load(Options{Dir: proj})
	if err := Allow(res); err != nil {
		t.Fatal(err)
	}
	load := func(ro bool) *Resolved {
		t.Helper()
		res, err := Load(Options{Dir: proj, ReadOnly: ro})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Tighten: trusted; ReadOnly does not record it.
	write(t, cfg, "[network]\nallowedDomains = [\"a.example\"]\ndeniedDomains = [\"x.example\", \"y.example\"]\n")
	if r := load(true); r.Trust != Trusted || !r.Applied {
		t.Fatalf("tightened: %v", r.Trust)
	}
	write(t, cfg, "[network]\nallowedDomains = [\"a.example\", \"b.example\"]\ndeniedDomains = [\"x.example\"]\n")
	if r := load(false); r.Trust != Trusted {
		t.Fatalf("back to the allowed version after a read-only load: %v", r.Trust)
	}
	// Tighten and record: loosening back is now a change.
	write(t, cfg, "[network]\nallowedDomains = [\"a.example\"]\ndeniedDomains = [\"x.example\"]\n")
	if r := load(false); r.Trust != Trusted {
		t.Fatalf("tightened: %v", r.Trust)
	}
	write(t, cfg, "[network]\nallowedDomains = [\"a.example\", \"b.example\"]\ndeniedDomains = []\n")
	r := load(false)
	if r.Trust != Changed || r.Applied {
		t.Fatalf("loosened: %v applied %v", r.Trust, r.Applied)
	}
	if want := []string{"+net b.example", "-deny-net x.example"}; !slices.Equal(r.NewGrants, want) {
		t.Errorf("NewGrants = %q, want %q", r.NewGrants, want)
	}
	if len(r.Network.Allow) != 0 {
		t.Errorf("a changed project layer applied: %v", r.Network.Allow)
	}
	if len(r.Notices) != 1 || !strings.Contains(r.Notices[0], "+net b.example, -deny-net x.example") {
		t.Errorf("notices = %q", r.Notices)
	}
}

// TestAllowWriteSymlinkEscape: an allowWrite entry may not reach, through a
// symlink, beyond what it says (red team B17). A symlink planted by one
// session at a path a later session's allowWrite names, or shipped by the
// repository, must not widen the sandbox to its target.
func TestAllowWriteSymlinkEscape(t *testing.T) {
	d := testEnv(t)
	h := filepath.Join(d, "home")
	proj := filepath.Join(h, "proj")
	os.MkdirAll(filepath.Join(proj, "build/out"), 0o755)
	os.MkdirAll(filepath.Join(h, "elsewhere"), 0o755)
	cfg := filepath.Join(proj, ".fence.toml")
	for _, tc := range []struct {
		name, link, target, src string
		line, col               int
		msg                     string
	}{
		// Session 1 planted dist -> ~ where allowWrite names ./dist.
		{"planted in writable root", "dist", h, "[filesystem]\nallowWrite = [\".\", \"./dist\"]\n", 2, 20, `"./dist" leads through the symlink dist to ~`},
		// The repository ships cache -> ../ and asks for ./cache.
		{"shipped relative", "cache", "..", "[filesystem]\nallowWrite = [\"./cache\"]\n", 2, 15, `"./cache" leads through the symlink cache to ~`},
		// Deeper: a symlinked directory on the way.
		{"link on the way", "gen", "../elsewhere", "[filesystem]\nallowWrite = [\"gen/x\"]\n", 2, 15, "to ~/elsewhere"},
		// An absolute entry naming a path inside the project, through a
		// shipped link: `fence allow` would show it as "+write c".
		{"absolute inside the project", "c", "..", "[filesystem]\nallowWrite = [\"" + proj + "/c\"]\n", 2, 15, "leads through the symlink c to ~, outside ~/proj"},
		// An absolute entry inside a writable path, through a planted link.
		{"absolute under writable", "w", "/", "[filesystem]\nallowWrite = [\".\", \"" + proj + "/w/etc\"]\n", 2, 20, "leads through the symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link := filepath.Join(proj, tc.link)
			if err := os.Symlink(tc.target, link); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(link)
			write(t, cfg, tc.src)
			_, err := Load(Options{Dir: proj})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load = %v, want a *config.Error", err)
			}
			if e.File != cfg || e.Line != tc.line || e.Col != tc.col || !strings.Contains(e.Msg, tc.msg) || e.Hint == "" {
				t.Errorf("got %s (hint %q)\nwant %s:%d:%d: ...%s... with a hint", e, e.Hint, cfg, tc.line, tc.col, tc.msg)
			}
		})
	}
	// A link that stays inside the project is fine, and resolved.
	os.Symlink("build", filepath.Join(proj, "b"))
	write(t, cfg, "[filesystem]\nallowWrite = [\"b/out\", \"b/new\"]\n")
	res, err := Load(Options{Dir: proj})
	if err != nil {
		t.Fatal(err)
	}
	Allow(res)
	res, _ = Load(Options{Dir: proj})
	if want := []string{filepath.Join(proj, "build/out")}; !slices.Equal(res.Sandbox.AllowWrite[:1], want) {
		t.Errorf("AllowWrite = %q", res.Sandbox.AllowWrite)
	}
	// The user layer, outside any writable path, may name a symlink.
	os.Symlink(filepath.Join(d, "real"), filepath.Join(h, ".cache-link"))
	write(t, UserConfigFile(), "[filesystem]\nallowWrite = [\"~/.cache-link\"]\n")
	os.Chmod(UserConfigFile(), 0o644)
	if _, err := Load(Options{Dir: proj}); err != nil {
		t.Errorf("user layer naming a symlink outside writable paths: %v", err)
	}
	// But not when another entry makes the link's directory writable.
	write(t, UserConfigFile(), "[filesystem]\nallowWrite = [\"~\", \"~/.cache-link\"]\n")
	if _, err := Load(Options{Dir: proj}); err == nil || !strings.Contains(err.Error(), "leads through the symlink") {
		t.Errorf("~ writable and ~/.cache-link -> elsewhere: err = %v", err)
	}
}

// TestLoadCreatesStateDirs: Load creates fence's own directories before any
// session starts, so the sandbox protects them instead of letting a session
// create them (red team B21), and lists them, with the runtime dir, in the
// policy's StateDirs.
func TestLoadCreatesStateDirs(t *testing.T) {
	d := testEnv(t)
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(d, "run"))
	proj := filepath.Join(d, "p")
	os.MkdirAll(proj, 0o755)
	res, err := Load(Options{Dir: proj})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{ConfigDir(), DataDir(), TrustDir(), StateDir()} {
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s after Load: %v %v", dir, fi, err)
		}
	}
	for _, dir := range []string{ConfigDir(), DataDir(), StateDir(), RuntimeDir()} {
		if !slices.Contains(res.Sandbox.StateDirs, dir) {
			t.Errorf("StateDirs %q lacks %s", res.Sandbox.StateDirs, dir)
		}
	}
}

// TestEnclosingDenies: a nearer .fence.toml (which a session could create)
// does not shed the enclosing project's denies (red team B23).
func TestEnclosingDenies(t *testing.T) {
	d := testEnv(t)
	p := filepath.Join(d, "p")
	write(t, filepath.Join(p, ".fence.toml"), "extends = [\"base.toml\"]\n[filesystem]\nallowWrite = [\".\"]\ndenyRead = [\".env\"]\n")
	write(t, filepath.Join(p, "base.toml"), "[network]\ndeniedDomains = [\"evil.example\"]\n")
	write(t, filepath.Join(p, "sub/.fence.toml"), "[network]\nallowedDomains = [\"x.example\"]\n")
	res, err := Load(Options{Dir: filepath.Join(p, "sub")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Root != filepath.Join(p, "sub") {
		t.Fatalf("Root = %s", res.Root)
	}
	if !slices.Contains(res.Sandbox.DenyRead, filepath.Join(p, ".env")) {
		t.Errorf("DenyRead %q lacks the enclosing project's .env", res.Sandbox.DenyRead)
	}
	if len(res.Network.Deny) != 1 || res.Network.Deny[0].String() != "evil.example" {
		t.Errorf("Network.Deny = %v, want the enclosing chain's evil.example", res.Network.Deny)
	}
	if slices.Contains(res.Sandbox.AllowWrite, p) {
		t.Errorf("the enclosing project's allowWrite applies: %q", res.Sandbox.AllowWrite)
	}
	for _, f := range []string{".fence.toml", "base.toml"} {
		if !slices.Contains(res.Sandbox.ConfigFiles, filepath.Join(p, f)) {
			t.Errorf("ConfigFiles %q lacks the enclosing %s", res.Sandbox.ConfigFiles, f)
		}
	}
	// The nested project's own trust hash does not cover the enclosing files.
	h := res.Hash
	write(t, filepath.Join(p, "base.toml"), "[network]\ndeniedDomains = [\"evil.example\", \"more.example\"]\n")
	if res, _ := Load(Options{Dir: filepath.Join(p, "sub")}); res.Hash != h {
		t.Errorf("nested hash changed with an enclosing file")
	}
}

// TestPrintable: strings from configs and directory names reach the
// terminal escaped (red team B16): a CR or ESC in a project directory's
// name cannot rewrite the untrusted notice or the grants.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain/path ok": "plain/path ok",
		"a\rb":          `"a\rb"`,
		"a\x1b[2Jb":     `"a\x1b[2Jb"`,
		"bidi\u202eb":   `"bidi\u202eb"`,
		"bad\xffutf8":   `"bad\xffutf8"`,
		"tab\t":         `"tab\t"`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %s, want %s", in, got, want)
		}
	}
	d := testEnv(t)
	p := filepath.Join(d, "home", "p\rfence: ok\x1bM")
	write(t, filepath.Join(p, ".fence.toml"), "[filesystem]\nallowWrite = [\"sub\", \"~/x\"]\n")
	res, err := Load(Options{Dir: p})
	if err != nil {
		t.Fatal(err)
	}
	all := append(append(append([]string(nil), res.Notices...), res.Grants...), DisplayPath(res.ConfigFile))
	for _, r := range res.Rules {
		all = append(all, r.Origin.String())
	}
	for _, s := range all {
		if strings.ContainsAny(s, "\r\x1b") {
			t.Errorf("raw control character in %q", s)
		}
	}
	if len(res.Notices) == 0 || !strings.Contains(res.Notices[0], `\r`) {
		t.Errorf("notices = %q, want the escaped path", res.Notices)
	}
}

// TestTemplatesNoHostExecDirs: no built-in template (nor its macOS
// addendum) grants writes to a directory whose contents the host runs or
// builds later without checking them (red team B8): pnpm's home (global bin
// shims, on PATH after 'pnpm setup'), yarn's global bin, ~/.local/bin,
// GOPATH/bin, the Go module cache (extracted sources reused by every host
// build), cargo's bin.
func TestTemplatesNoHostExecDirs(t *testing.T) {
	testEnv(t)
	forbidden := []string{"~/.local/share/pnpm", "~/Library/pnpm", "~/.local/bin", "~/go/bin", "~/go/pkg/mod",
		"~/.yarn/bin", "~/.config/yarn/global", "~/.cargo/bin", "~/.npm-global", "~/bin"}
	for _, n := range Templates() {
		for _, src := range []string{"", "darwin"} {
			b, _ := Template(n)
			if src == "darwin" {
				var ok bool
				if b, ok = templateAddendum(n, "darwin"); !ok {
					continue
				}
			}
			fr, err := parseRules("template:"+n, "/p", LayerProject, b, false)
			if err != nil {
				t.Fatalf("template %s %s: %v", n, src, err)
			}
			for _, it := range fr.AllowWrite {
				for _, f := range forbidden {
					f, _ := expandPath(f, "/")
					if within(it.Value, f) || within(f, it.Value) {
						t.Errorf("template %s %s grants %s, which covers %s", n, src, it.Raw, f)
					}
				}
			}
		}
	}
	// macOS caches come from the addenda, and only on macOS.
	if b, ok := templateAddendum("go", "darwin"); !ok || !strings.Contains(string(b), "~/Library/Caches/go-build") {
		t.Errorf("go has no macOS build cache: %q", b)
	}
	if b, _ := Template("go"); strings.Contains(string(b), "Library") {
		t.Errorf("the common go template names macOS paths")
	}
	if slices.Contains(Templates(), "darwin") {
		t.Errorf("Templates lists the addenda directory: %q", Templates())
	}
}

// TestGlobCharsInDirNames: glob characters in the directory a relative
// path is joined to (the project root's own name) are literal. Before, a
// project in "p[1]" had its denyRead [".env"] silently match nothing, and
// its "." matched a sibling "p1".
func TestGlobCharsInDirNames(t *testing.T) {
	d := testEnv(t)
	p := filepath.Join(d, "home", "p[1]*")
	os.MkdirAll(filepath.Join(d, "home", "p1"), 0o755)
	write(t, filepath.Join(p, ".env"), "x")
	write(t, filepath.Join(p, "a.key"), "x")
	write(t, filepath.Join(p, ".fence.toml"), "[filesystem]\nallowWrite = [\".\"]\ndenyRead = [\".env\", \"*.key\"]\n")
	res, err := Load(Options{Dir: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := Allow(res); err != nil {
		t.Fatal(err)
	}
	if res, err = Load(Options{Dir: p}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Sandbox.AllowWrite, []string{p}) {
		t.Errorf("AllowWrite = %q, want %q", res.Sandbox.AllowWrite, p)
	}
	for _, f := range []string{".env", "a.key"} {
		if !slices.Contains(res.Sandbox.DenyRead, filepath.Join(p, f)) {
			t.Errorf("DenyRead %q lacks %s", res.Sandbox.DenyRead, f)
		}
	}
	if want := []string{"+write ."}; !slices.Equal(res.Grants, want) {
		t.Errorf("Grants = %q, want %q", res.Grants, want)
	}
	if !MatchPath(filepath.Join(escapeGlob(p), "*"), filepath.Join(p, "x")) {
		t.Errorf("MatchPath with an escaped literal part")
	}
}

func TestEnvName(t *testing.T) {
	for s, want := range map[string]bool{
		"PATH": true, "_x": true, "a1_B": true, "X": true,
		"": false, "1A": false, "NPM-TOKEN": false, "A B": false, "Ä": false, "A=": false, "a\n": false,
	} {
		if got := envName(s); got != want {
			t.Errorf("envName(%q) = %v, want %v", s, got, want)
		}
	}
}
