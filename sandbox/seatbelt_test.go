package sandbox

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/seatbelt/*.sb from the generator")

const (
	tHome = "/Users/alice"
	tProj = "/Users/alice/src/proj"
	tTmp  = "/private/var/folders/zz/xy_1/T/fence-42"
	tExe  = "/usr/local/bin/fence"
)

// tOpts are the options every case starts from.
func tOpts() SeatbeltOptions {
	return SeatbeltOptions{Home: tHome, Executable: tExe, TmpDir: tTmp, HTTPProxyPort: 50001, SOCKSPort: 50002}
}

// tDefaultDenyRead is the built-in denyRead set of DESIGN.md §3.
var tDefaultDenyRead = []string{
	tHome + "/.ssh", tHome + "/.gnupg", tHome + "/.aws", tHome + "/.config/gcloud", tHome + "/.kube",
	tHome + "/.docker/config.json", tHome + "/.netrc", tHome + "/.git-credentials",
}

// tFenceOwn are fence's own files of a session.
func tFenceOwn(p Policy) Policy {
	p.ConfigFiles = append(p.ConfigFiles, tProj+"/.fence.toml", tHome+"/.config/fence/config.toml", "/etc/fence/policy.toml")
	p.StateDirs = append(p.StateDirs, tHome+"/.local/share/fence", tHome+"/.local/state/fence")
	return p
}

type seatbeltCase struct {
	name string
	p    Policy
	opts SeatbeltOptions
}

func seatbeltCases() []seatbeltCase {
	weird := tHome + "/src/we\"ird\\ dir\n(x);#\"y\"\tü"
	return []seatbeltCase{
		{"default", tFenceOwn(Policy{Root: tProj, DenyRead: tDefaultDenyRead}), tOpts()},
		{"no_relay", Policy{Root: tProj}, SeatbeltOptions{Home: tHome, TmpDir: tTmp}},
		{"allow_write_project", tFenceOwn(Policy{Root: tProj, AllowWrite: []string{tProj}, DenyRead: tDefaultDenyRead}), tOpts()},
		{"allow_write_many_deny_write", Policy{Root: tProj,
			AllowWrite: []string{tProj, tHome + "/.cache/npm", tHome + "/.npm"},
			DenyWrite:  []string{tProj + "/dist/secrets", tProj + "/vendor"}}, tOpts()},
		{"deny_read", Policy{Root: tProj, AllowWrite: []string{tProj},
			DenyRead: append([]string{tProj + "/.env.production", tHome + "/Library/Keychains"}, tDefaultDenyRead...)}, tOpts()},
		{"allow_git_config", Policy{Root: tProj, AllowWrite: []string{tProj}, AllowGitConfig: true}, tOpts()},
		{"local_binding_on", Policy{Root: tProj, AllowWrite: []string{tProj}, AllowLocalBinding: true}, tOpts()},
		{"local_binding_off_publish", Policy{Root: tProj, AllowWrite: []string{tProj}, Publish: []int{3000, 8080, 3000}}, tOpts()},
		{"local_binding_on_publish", Policy{Root: tProj, AllowWrite: []string{tProj}, AllowLocalBinding: true, Publish: []int{3000}}, tOpts()},
		{"local_outbound", Policy{Root: tProj, LocalOutbound: []int{5432, 6379, 0, 70000}}, tOpts()},
		{"tmp_aliases", Policy{Root: "/private/tmp/proj", AllowWrite: []string{"/private/tmp/proj", "/var/cache/build"},
			DenyRead: []string{"/etc/secret"}, DenyWrite: []string{"/tmp/proj/out"}}, tOpts()},
		{"weird_chars", Policy{Root: weird, AllowWrite: []string{weird}, DenyWrite: []string{weird + "/ro"},
			DenyRead: []string{weird + "/.env"}}, tOpts()},
		{"home_writable", tFenceOwn(Policy{Root: tProj, AllowWrite: []string{tHome}}), tOpts()},
		{"tty_and_hookspath", Policy{Root: tProj, AllowWrite: []string{tProj}}, func() SeatbeltOptions {
			o := tOpts()
			o.TTYs = []string{"/dev/ttys004", "/dev/ttys004"}
			o.ExtraProtected = []ProtectedPath{{Path: tProj + "/tools/hooks", Dir: true, Reason: "git hooks (core.hooksPath)"}}
			return o
		}()},
	}
}

func TestSeatbeltGolden(t *testing.T) {
	for _, c := range seatbeltCases() {
		t.Run(c.name, func(t *testing.T) {
			got := SeatbeltProfile(c.p, c.opts)
			file := filepath.Join("testdata", "seatbelt", c.name+".sb")
			if *updateGolden {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./sandbox -run TestSeatbeltGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("profile differs from %s (rerun with -update and review the diff)\n%s", file, firstDiff(string(want), got))
			}
			if got != SeatbeltProfile(c.p, c.opts) {
				t.Error("profile is not deterministic")
			}
		})
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n- %q\n+ %q", i+1, x, y)
		}
	}
	return ""
}

// TestSeatbeltProtectedLast checks, for every case, that every path of
// ProtectedPaths (in every macOS spelling) is denied in the profile's last
// section, and that nothing in that section allows anything.
func TestSeatbeltProtectedLast(t *testing.T) {
	for _, c := range seatbeltCases() {
		t.Run(c.name, func(t *testing.T) {
			prof := SeatbeltProfile(c.p, c.opts)
			i := strings.Index(prof, protectedMarker)
			if i < 0 {
				t.Fatal("no protected section")
			}
			if strings.Count(prof, protectedMarker) != 1 {
				t.Fatal("protected marker appears more than once")
			}
			head, tail := prof[:i], prof[i:]
			if !strings.Contains(head, "(allow file-write*") {
				t.Error("no write allows before the protected section")
			}
			rules := parseProfile(t, tail)
			if len(rules) == 0 {
				t.Fatal("empty protected section")
			}
			denied := map[string]bool{}
			for _, r := range rules {
				if r.action != "deny" {
					t.Errorf("protected section holds a %s rule: %v", r.action, r.ops)
				}
				if !r.hasOp("file-write*") && !r.hasOp("file-link") {
					continue
				}
				for _, f := range r.filters {
					if len(f) == 2 {
						if s, ok := f[1].(sbplStr); ok && (atom(f[0]) == "subpath" || atom(f[0]) == "literal") {
							denied[string(s)] = true
						}
					}
				}
			}
			want := ProtectedPaths(c.p, c.opts.Home, c.opts.Executable)
			want = append(want, c.opts.ExtraProtected...)
			if len(want) < 20 {
				t.Fatalf("only %d protected paths: the list lost entries", len(want))
			}
			for _, pp := range want {
				for _, s := range sbSpellings(pp.Path) {
					if !denied[s] {
						t.Errorf("protected path %q (%s) is not denied last", s, pp.Reason)
					}
				}
			}
			for _, d := range append(append([]string{}, c.p.DenyWrite...), c.p.DenyRead...) {
				for _, s := range sbSpellings(d) {
					if !denied[s] {
						t.Errorf("denied path %q is not denied last", s)
					}
				}
			}
		})
	}
}

// TestSeatbeltNoBroadAllows checks that no allow without a filter (which
// would allow the operation everywhere) slips in beyond the few meant to be.
func TestSeatbeltNoBroadAllows(t *testing.T) {
	broad := map[string]bool{"process-exec": true, "process-fork": true, "file-read*": true, "mach-host*": true,
		"user-preference-read": true, "ipc-posix-sem": true, "ipc-posix-shm": true, "pseudo-tty": true}
	for _, c := range seatbeltCases() {
		for _, r := range parseProfile(t, SeatbeltProfile(c.p, c.opts)) {
			if r.action != "allow" || len(r.filters) > 0 {
				continue
			}
			for _, op := range r.ops {
				if !broad[op] {
					t.Errorf("%s: unfiltered (allow %s)", c.name, op)
				}
			}
		}
	}
}

// query is one operation the profile decides on.
type query struct {
	op     string
	path   string // file operations
	remote string // network-outbound, "localhost:N"
	local  string // network-bind, "localhost:N"
}

func w(path string) query { return query{op: "file-write-create", path: path} }
func r(path string) query { return query{op: "file-read-data", path: path} }
func out(port int) query {
	return query{op: "network-outbound", remote: "localhost:" + strconv.Itoa(port)}
}
func bind(port int) query    { return query{op: "network-bind", local: "localhost:" + strconv.Itoa(port)} }
func bindAny(h string) query { return query{op: "network-bind", local: h} }

// TestSeatbeltDecisions evaluates generated profiles the way Seatbelt does
// (deny default, the last matching rule wins) on the paths and ports that
// matter, including protected paths that do not exist yet.
func TestSeatbeltDecisions(t *testing.T) {
	type check struct {
		q     query
		allow bool
	}
	tests := []struct {
		name   string
		p      Policy
		opts   SeatbeltOptions
		checks []check
	}{
		{"project", tFenceOwn(Policy{Root: tProj, AllowWrite: []string{tProj}, DenyRead: tDefaultDenyRead,
			DenyWrite: []string{tProj + "/dist/secrets"}}), tOpts(), []check{
			{w(tProj + "/src/main.go"), true},
			{w(tProj + "/.git/objects/ab/cdef"), true},
			{w(tProj + "/.git/index"), true},
			{w(tProj + "/.github/workflows/ci.yml"), true},
			{w(tProj + "/.envrc.example"), true},
			{w(tProj + "/.git/hooks/pre-commit"), false},
			{w(tProj + "/.git/hooks"), false},
			{w(tProj + "/.git/config"), false},
			{w(tProj + "/.git/info/attributes"), false},
			{w(tProj + "/.git/commondir"), false},
			{w(tProj + "/.git/modules/sub/config"), false},
			{w(tProj + "/.git/modules/sub/hooks/post-checkout"), false},
			{w(tProj + "/.git/modules/sub/objects/x"), true},
			{w(tProj + "/.git/config.worktree"), false},
			{w(tProj + "/.git/worktrees/w/config.worktree"), false},
			{w(tProj + "/.git/worktrees/w/commondir"), false},
			{w(tProj + "/.git"), false},         // rename .git away and back
			{w(tProj + "/.git/modules"), false}, // idem
			{w(tProj), false},                   // rename the root
			{w(tProj + "/.envrc"), false},
			{w(tProj + "/.vscode/tasks.json"), false},
			{w(tProj + "/.idea/workspace.xml"), false},
			{w(tProj + "/.devcontainer/devcontainer.json"), false},
			{w(tProj + "/.mcp.json"), false},
			{w(tProj + "/.claude/settings.json"), false},
			{w(tProj + "/.cursor/rules"), false},
			{w(tProj + "/.husky/pre-commit"), false},
			{w(tProj + "/.githooks/pre-push"), false},
			{w(tProj + "/.pre-commit-config.yaml"), false},
			{w(tProj + "/.gitmodules"), false},
			{w(tProj + "/.fence.toml"), false},
			// Not existing yet, nested, other letter case.
			{w(tProj + "/vendor/lib/.git/hooks/pre-commit"), false},
			{w(tProj + "/packages/a/.envrc"), false},
			{w(tProj + "/packages/a/.VSCode/tasks.json"), false},
			{w(tProj + "/.GIT/HOOKS/pre-commit"), false},
			{w(tProj + "/.Git/Config"), false},
			{w(tProj + "/dist/secrets/key"), false},
			{w(tProj + "/dist/secrets"), false},
			{w(tProj + "/dist"), false}, // parent of a denyWrite path
			{w(tProj + "/dist/app.js"), true},
			{w(tTmp + "/x"), true},
			{w(tTmp + "/repo/.git/hooks/pre-commit"), false},
			{w("/var/folders/zz/xy_1/T/fence-42/y"), true},
			{w("/tmp/x"), false},
			{w("/private/tmp/x"), false},
			{w(tHome + "/.bashrc"), false},
			{w(tHome + "/notes.txt"), false},
			{w("/etc/fence/policy.toml"), false},
			{w("/dev/null"), true},
			{query{op: "file-write-data", path: "/dev/fd/2"}, true},
			{w("/dev/fd"), false},
			{w("/dev/disk0"), false},
			{r("/etc/passwd"), true},
			{r(tProj + "/src/main.go"), true},
			{r(tHome + "/.ssh/id_ed25519"), false},
			{r(tHome + "/.SSH/id_ed25519"), false},
			{r(tHome + "/.aws/credentials"), false},
			{r(tHome + "/.netrc"), false},
			{r(tHome + "/.local/share/fence/trust/abc"), false}, // fence's state: masked on Linux
			{r(tHome + "/.config/fence/config.toml"), true},     // a config file, not a state dir, in this test
			{r("/dev/ttys003"), false},                          // another terminal of the user
			{w("/dev/ttys003"), false},
			{r(SeatbeltProbe), false},
			{query{op: "process-exec", path: SeatbeltProbe}, false},
			{query{op: "file-link", path: tProj + "/bashrc-link"}, false},
			{query{op: "file-clone", path: tProj + "/clone"}, false},
			{out(50001), true},
			{out(50002), true},
			{out(5432), false},
			{out(443), false},
			{out(50003), false}, // another session's relay
			{query{op: "network-outbound", path: "/private/tmp/fence-501/control.sock"}, false}, // the daemon
			{query{op: "network-bind", path: tProj + "/app.sock"}, false},
			{bind(3000), false},
			{query{op: "network-outbound", path: tTmp + "/app.sock"}, true},
			{query{op: "network-outbound", path: "/private/tmp/tmux-501/default"}, false},
			{query{op: "network-outbound", path: "/private/var/run/docker.sock"}, false},
			{query{op: "mach-lookup"}, false},
			{query{op: "process-fork"}, true},
		}},
		{"git config allowed", Policy{Root: tProj, AllowWrite: []string{tProj}, AllowGitConfig: true}, tOpts(), []check{
			{w(tProj + "/.git/config"), true},
			{w(tProj + "/.git/hooks/pre-commit"), false},
		}},
		{"home writable", Policy{Root: tProj, AllowWrite: []string{tHome}}, tOpts(), []check{
			{w(tHome + "/.cache/x"), true},
			{w(tHome + "/.bashrc"), false},
			{w(tHome + "/.zshenv"), false},
			{w(tHome + "/.config/fish/config.fish"), false},
			{w(tHome + "/.config/git/config"), false},
			{w(tHome + "/.config"), false}, // parent of protected paths: cannot be renamed
			{w(tHome + "/.config/other/x.conf"), true},
			{w(tHome + "/.config/nvim/init.lua"), false},
			{w(tHome + "/.local/lib/python3.12/site-packages/x.pth"), false},
			{w(tHome + "/.ssh/authorized_keys"), false},
			{w(tHome + "/.local/bin/ls"), false},
			{w(tHome + "/Library/LaunchAgents/evil.plist"), false},
			{w(tHome + "/.gitconfig"), false},
			{w(tHome), false},
		}},
		// fence shell's directory: read-only with the home writable, but
		// for the session's own history (appended, and replaced by rename).
		{"shell directory", Policy{Root: tProj, AllowWrite: []string{tHome}, ShellDir: tHome + "/.local/state/fence-shell",
			ShellWrite: []string{tHome + "/.local/state/fence-shell/history/proj-1"}}, tOpts(), []check{
			{w(tHome + "/.local/state/fence-shell/history/proj-1/bash"), true},
			{w(tHome + "/.local/state/fence-shell/history/proj-1/.zsh_history.new"), true},
			{w(tHome + "/.local/state/fence-shell/history/proj-1/fish/fish_history"), true},
			{w(tHome + "/.local/state/fence-shell/history/proj-1/.envrc"), false},
			{w(tHome + "/.local/state/fence-shell/history/other-2/bash"), false},
			{w(tHome + "/.local/state/fence-shell/history/new-3"), false},
			{w(tHome + "/.local/state/fence-shell/sessions/1-ab/notice"), false},
			{w(tHome + "/.local/state/fence-shell/sessions"), false},
			{w(tHome + "/.local/state/fence-shell"), false},
			{w(tHome + "/.local/state/Fence-Shell/sessions"), false},
			{w(tHome + "/.local/state"), false}, // its parent: cannot be renamed
			{w(tHome + "/.local/state/other"), true},
			{r(tHome + "/.local/state/fence-shell/sessions/1-ab/init.bash"), true},
		}},
		{"shell directory, home read-only", Policy{Root: tProj, AllowWrite: []string{tProj}, ShellDir: tHome + "/.local/state/fence-shell",
			ShellWrite: []string{tHome + "/.local/state/fence-shell/history/proj-1", tHome + "/elsewhere"}}, tOpts(), []check{
			{w(tHome + "/.local/state/fence-shell/history/proj-1/bash"), true},
			{w(tHome + "/.local/state/fence-shell/history/other-2/bash"), false},
			{w(tHome + "/elsewhere/x"), false},
		}},
		{"data volume spelling", Policy{Root: tProj, AllowWrite: []string{"/System/Volumes/Data" + tHome}}, tOpts(), []check{
			{w("/System/Volumes/Data" + tHome + "/x"), true},
			{w("/System/Volumes/Data" + tHome + "/.bashrc"), false},
			{w("/System/Volumes/Data" + tHome + "/.config/fish/config.fish"), false},
			{w("/System/Volumes/Data" + tHome + "/.ssh/authorized_keys"), false},
		}},
		{"binding and ports", Policy{Root: tProj, AllowLocalBinding: true, Publish: []int{3000}, LocalOutbound: []int{5432}}, tOpts(), []check{
			{bind(3000), true},
			{bind(41234), true},
			{bindAny("*:3000"), false},
			{out(3000), true},
			{out(5432), true},
			{out(6379), false},
		}},
		{"publish only", Policy{Root: tProj, Publish: []int{3000}}, tOpts(), []check{
			{bind(3000), true},
			{bind(3001), false},
			{query{op: "network-inbound", local: "localhost:3000"}, true},
		}},
		{"no relay", Policy{Root: tProj}, SeatbeltOptions{Home: tHome, TmpDir: tTmp}, []check{
			{out(50001), false},
			{out(3128), false},
		}},
		{"aliases", Policy{Root: "/private/tmp/proj", AllowWrite: []string{"/tmp/proj"}, DenyRead: []string{"/private/etc/secret"}}, tOpts(), []check{
			{w("/private/tmp/proj/a"), true},
			{w("/tmp/proj/a"), true},
			{w("/private/tmp/proj/.envrc"), false},
			{r("/etc/secret"), false},
			{r("/private/etc/secret"), false},
			{w("/private/etc/fence/policy.toml"), false},
		}},
		{"tty", Policy{Root: tProj}, func() SeatbeltOptions { o := tOpts(); o.TTYs = []string{"/dev/ttys004"}; return o }(), []check{
			{r("/dev/ttys004"), true},
			{w("/dev/ttys004"), true},
			{query{op: "file-ioctl", path: "/dev/ttys004"}, true},
			{r("/dev/ttys005"), false},
			{w("/dev/ptmx"), true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := parseProfile(t, SeatbeltProfile(tt.p, tt.opts))
			for _, c := range tt.checks {
				if got := decide(t, rules, c.q); got != c.allow {
					t.Errorf("%s %s%s%s: allowed=%v, want %v", c.q.op, c.q.path, c.q.remote, c.q.local, got, c.allow)
				}
			}
		})
	}
}

// TestSeatbeltWeirdPaths checks that every path, however it is spelled,
// comes back unchanged from the SBPL string literal it is written as.
func TestSeatbeltWeirdPaths(t *testing.T) {
	paths := []string{
		`/Users/a/with "quotes"`, `/Users/a/back\slash`, `/Users/a/ends\`, "/Users/a/new\nline",
		"/Users/a/tab\there", "/Users/a/bell\a\x7f", "/Users/a/(paren) ;semi #\"hash", "/Users/a/ünï 日本",
		`/Users/a/"`, `/Users/a/\"`, "/Users/a/$x`y`", "/Users/a/[x]{1}^+?*|.", "/Users/a/a]b}c",
	}
	for _, p := range paths {
		lit := sbplString(p)
		toks := tokenize(t, "(literal "+lit+")")
		if len(toks) != 4 {
			t.Fatalf("%q: literal %s tokenizes as %d tokens", p, lit, len(toks))
		}
		if got, ok := toks[2].(sbplStr); !ok || string(got) != p {
			t.Errorf("%q round-trips as %q", p, toks[2])
		}
		re := sbRegexCI(p)
		if strings.Contains(re, `"`) {
			t.Errorf("%q: regex %q holds a double quote", p, re)
		}
		if !regexp.MustCompile("^" + re + "$").MatchString(p) {
			t.Errorf("%q: case-insensitive regex %q does not match it", p, re)
		}
		prof := SeatbeltProfile(Policy{AllowWrite: []string{p}, DenyRead: []string{p + "/x"}}, tOpts())
		rules := parseProfile(t, prof)
		if !decide(t, rules, w(p+"/file")) || decide(t, rules, r(p+"/x/y")) || decide(t, rules, w(p+"/.envrc")) {
			t.Errorf("%q: wrong decisions in\n%s", p, prof)
		}
	}
}

func TestSeatbeltRegexCI(t *testing.T) {
	f := sbRegexFilterCI("/Users/a/.ssh", true)
	re := regexp.MustCompile(strings.TrimSuffix(strings.TrimPrefix(f, `(regex #"`), `")`))
	for _, s := range []string{"/Users/a/.ssh", "/users/A/.SSH/id", "/USERS/a/.ssh/"} {
		if !re.MatchString(s) {
			t.Errorf("%q not matched", s)
		}
	}
	for _, s := range []string{"/Users/a/.sshx", "/Users/a/x.ssh", "/Users/ab/.ssh"} {
		if re.MatchString(s) {
			t.Errorf("%q matched", s)
		}
	}
}

func TestSeatbeltSpellings(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp":                "/private/tmp /tmp",
		"/tmp/x":              "/private/tmp/x /tmp/x",
		"/private/var/x":      "/private/var/x /var/x",
		"/etc/fence":          "/private/etc/fence /etc/fence",
		"/tmpfoo":             "/tmpfoo",
		"/private/tmpfoo":     "/private/tmpfoo",
		"/Users/a/tmp":        "/Users/a/tmp",
		"/private/etc/../var": "/private/var /var",
	} {
		if got := strings.Join(sbSpellings(in), " "); got != want {
			t.Errorf("sbSpellings(%q) = %q, want %q", in, got, want)
		}
	}
}

// --- a small SBPL reader and evaluator, enough for fence's own profiles ---

type sbplStr string   // "..." literal, decoded
type sbplRegex string // #"..." literal, raw
type sexp = any       // string (atom), sbplStr, sbplRegex or []sexp

func atom(x sexp) string { s, _ := x.(string); return s }

func tokenize(t *testing.T, src string) []sexp {
	t.Helper()
	var toks []sexp
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\n' || c == '\t':
			i++
		case c == ';':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '"':
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					t.Fatalf("unterminated string in %q", src)
				}
				c := src[i]
				if c == '"' {
					i++
					break
				}
				if c == '\n' {
					t.Fatalf("raw newline in string in %q", src)
				}
				if c == '\\' {
					i++
					switch e := src[i]; e {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case '"', '\\':
						b.WriteByte(e)
					case 'x':
						v, err := strconv.ParseUint(src[i+1:i+3], 16, 8)
						if err != nil {
							t.Fatalf("bad \\x escape in %q", src)
						}
						b.WriteByte(byte(v))
						i += 2
					default:
						t.Fatalf("unknown escape \\%c in %q", e, src)
					}
					i++
					continue
				}
				b.WriteByte(c)
				i++
			}
			toks = append(toks, sbplStr(b.String()))
		case c == '#' && i+1 < len(src) && src[i+1] == '"':
			j := strings.IndexByte(src[i+2:], '"')
			if j < 0 {
				t.Fatalf("unterminated regex in %q", src)
			}
			toks = append(toks, sbplRegex(src[i+2:i+2+j]))
			i += j + 3
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \n\t()\";", rune(src[j])) {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		}
	}
	return toks
}

type rule struct {
	action  string
	ops     []string
	filters [][]sexp
}

func (r rule) hasOp(op string) bool {
	for _, o := range r.ops {
		if o == op {
			return true
		}
	}
	return false
}

func parseProfile(t *testing.T, src string) []rule {
	t.Helper()
	toks := tokenize(t, src)
	var parse func(i int) (sexp, int)
	parse = func(i int) (sexp, int) {
		if toks[i] != "(" {
			return toks[i], i + 1
		}
		var list []sexp
		i++
		for {
			if i >= len(toks) {
				t.Fatal("unbalanced parentheses")
			}
			if toks[i] == ")" {
				return list, i + 1
			}
			var x sexp
			x, i = parse(i)
			list = append(list, x)
		}
	}
	var rules []rule
	for i := 0; i < len(toks); {
		if toks[i] == ")" {
			t.Fatal("unbalanced parentheses")
		}
		var x sexp
		x, i = parse(i)
		l, ok := x.([]sexp)
		if !ok {
			t.Fatalf("top-level atom %v", x)
		}
		switch atom(l[0]) {
		case "version":
			continue
		case "allow", "deny":
		default:
			t.Fatalf("unknown top-level form %v", l[0])
		}
		rl := rule{action: atom(l[0])}
		for _, e := range l[1:] {
			if f, ok := e.([]sexp); ok {
				rl.filters = append(rl.filters, f)
			} else if len(rl.filters) > 0 {
				t.Fatalf("operation %v after a filter", e)
			} else {
				rl.ops = append(rl.ops, atom(e))
			}
		}
		rules = append(rules, rl)
	}
	return rules
}

func opMatches(ruleOp, op string) bool {
	if strings.HasSuffix(ruleOp, "*") {
		return strings.HasPrefix(op, strings.TrimSuffix(ruleOp, "*"))
	}
	return ruleOp == op
}

func filterMatches(t *testing.T, f []sexp, q query) bool {
	arg := func(i int) string {
		switch v := f[i].(type) {
		case sbplStr:
			return string(v)
		case sbplRegex:
			return string(v)
		}
		t.Fatalf("filter %v: argument %d is %T", f, i, f[i])
		return ""
	}
	switch atom(f[0]) {
	case "literal":
		return q.path != "" && q.path == arg(1)
	case "subpath":
		return q.path != "" && (q.path == arg(1) || strings.HasPrefix(q.path, strings.TrimSuffix(arg(1), "/")+"/"))
	case "regex":
		return q.path != "" && cachedRegexp(arg(1)).MatchString(q.path)
	case "require-all":
		for _, sub := range f[1:] {
			if !filterMatches(t, sub.([]sexp), q) {
				return false
			}
		}
		return true
	case "extension":
		return false // no sandbox extension is ever issued in these tests
	case "remote":
		return atom(f[1]) == "ip" && q.remote != "" && ipMatches(arg(2), q.remote)
	case "local":
		return atom(f[1]) == "ip" && q.local != "" && ipMatches(arg(2), q.local)
	}
	return false // sysctl-name, global-name, target, ...: not queried here
}

var regexpCache sync.Map

func cachedRegexp(re string) *regexp.Regexp {
	if v, ok := regexpCache.Load(re); ok {
		return v.(*regexp.Regexp)
	}
	c := regexp.MustCompile(re)
	regexpCache.Store(re, c)
	return c
}

func ipMatches(pattern, addr string) bool {
	ph, pp, _ := strings.Cut(pattern, ":")
	ah, ap, _ := strings.Cut(addr, ":")
	return ph == ah && (pp == "*" || pp == ap)
}

// decide returns whether rules allow q: deny by default, last match wins.
func decide(t *testing.T, rules []rule, q query) bool {
	t.Helper()
	allowed := false
	for _, r := range rules {
		if r.hasOp("default") {
			allowed = r.action == "allow"
			continue
		}
		opOK := false
		for _, o := range r.ops {
			if opMatches(o, q.op) {
				opOK = true
			}
		}
		if !opOK {
			continue
		}
		match := len(r.filters) == 0
		for _, f := range r.filters {
			if filterMatches(t, f, q) {
				match = true
			}
		}
		if match {
			allowed = r.action == "allow"
		}
	}
	return allowed
}

func TestSeatbeltRelayEnv(t *testing.T) {
	env := SandboxEnv([]string{"PATH=/usr/bin", "HTTP_PROXY=http://evil:1", "DYLD_INSERT_LIBRARIES=/x.dylib", "SSH_AUTH_SOCK=/tmp/agent"},
		EnvOptions{TMPDIR: tTmp, Session: "s1", Fence: tExe})
	got := map[string]string{}
	for _, kv := range seatbeltRelayEnv(env, 50001, 50002) {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for k, want := range map[string]string{
		"HTTP_PROXY": "http://127.0.0.1:50001", "https_proxy": "http://127.0.0.1:50001",
		"ALL_PROXY": "socks5h://127.0.0.1:50002", "all_proxy": "socks5h://127.0.0.1:50002",
		"TMPDIR": tTmp, "FENCE_SESSION": "s1", "PATH": "/usr/bin",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	for _, k := range []string{"DYLD_INSERT_LIBRARIES", "SSH_AUTH_SOCK"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s reached the sandbox", k)
		}
	}
	if g := got["GIT_SSH_COMMAND"]; !strings.Contains(g, "proxy-connect --proxy 127.0.0.1:50002 %h %p") {
		t.Errorf("GIT_SSH_COMMAND = %q", g)
	}
	if j := got["JAVA_TOOL_OPTIONS"]; !strings.Contains(j, "proxyPort=50001") || strings.Contains(j, "3128") {
		t.Errorf("JAVA_TOOL_OPTIONS = %q", j)
	}
	// No relay: the fixed ports stay, and no profile lets the command reach them.
	for _, kv := range seatbeltRelayEnv(env, 0, 0) {
		if strings.HasPrefix(kv, "HTTP_PROXY=") && kv != "HTTP_PROXY=http://127.0.0.1:3128" {
			t.Errorf("without relay: %s", kv)
		}
	}
}

func TestResolveProtectedHooksPath(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{".git/modules/sub/hooks", "tools/hooks"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := "[core]\n\trepositoryformatversion = 0\n\thooksPath = tools/hooks\n[remote \"origin\"]\n\turl = x\n"
	if err := os.WriteFile(filepath.Join(root, ".git", "config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, pp := range ResolveProtected(Policy{AllowWrite: []string{root}}, "", "") {
		got[pp.Path] = pp.Dir
	}
	for _, want := range []string{"tools/hooks", ".git/modules/sub/hooks", ".git/modules/sub/config", ".git/hooks", ".envrc"} {
		if _, ok := got[filepath.Join(root, want)]; !ok {
			t.Errorf("%s not protected", want)
		}
	}
	if !got[filepath.Join(root, "tools/hooks")] {
		t.Error("core.hooksPath protected as a file, not a tree")
	}
}

// TestListenRelay checks the macOS relay: bytes and half-closes pass both
// ways, and with the daemon gone connections are closed, not hung or
// answered.
func TestListenRelay(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "http.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c) // echo until the client half-closes
				c.(*net.UnixConn).CloseWrite()
			}()
		}
	}()
	ln, err := listenRelay(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if a := ln.Addr().(*net.TCPAddr); !a.IP.IsLoopback() || a.Port == 0 {
		t.Fatalf("relay listens on %v, want 127.0.0.1:ephemeral", a)
	}
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("CONNECT example.com:443"))
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "CONNECT example.com:443" {
			t.Fatalf("relayed %q, %v", b, err)
		}
		c.Close()
	}
	ul.Close() // the daemon is gone
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Fatalf("without the daemon: read %q, %v; want EOF", b, err)
	}
}

func ExampleSeatbeltProfile() {
	p := Policy{Root: "/Users/a/proj", AllowWrite: []string{"/Users/a/proj"}, Publish: []int{3000}}
	prof := SeatbeltProfile(p, SeatbeltOptions{Home: "/Users/a", TmpDir: "/private/var/folders/x/T/fence-1", HTTPProxyPort: 50001, SOCKSPort: 50002})
	for _, l := range strings.Split(prof, "\n") {
		if strings.Contains(l, " ip ") {
			fmt.Println(strings.TrimSpace(l))
		}
	}
	// Output:
	// (remote ip "localhost:3000")
	// (remote ip "localhost:50001")
	// (remote ip "localhost:50002"))
	// (local ip "localhost:3000"))
}

func BenchmarkSeatbeltProfile(b *testing.B) {
	p := tFenceOwn(Policy{Root: tProj, AllowWrite: []string{tProj, tHome + "/.npm"}, DenyRead: tDefaultDenyRead})
	o := tOpts()
	for b.Loop() {
		SeatbeltProfile(p, o)
	}
}
