package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the config parser: it must never panic,
// every failure must be a positioned *Error inside the input, and whatever
// parses must merge.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"",
		"[network]\nallowedDomains = [\"example.com\", \"*.github.com:22\"]\n",
		"extends = [\"npm\", \"./base.toml\"]\n[filesystem]\nallowWrite = [\".\", \"~/.cache\"]\n",
		"network = { allowedDomains = [\"a.com\", 'b'] }\n",
		"[network]\nallowLocalOutbound = [5432, 6379]\npublish = [3000]\nallowLocalBinding = true\n",
		"[network]\nallowedDomains = [\"\"\"x\"\"\", '''y''', [1], {a=1}]\n",
		"a.b.c = 1\n[[x]]\n",
		"[env]\npass = [\"A\", \"B\"]\n[filesystem]\ndenyRead = [\"**/.env*\", \"[a-\"]\n",
		"\xff\xfe",
		"[network]\nallowedDomain = 1 # x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRules("/p/.fence.toml", "/p", LayerProject, data, false)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error is %T, not *Error: %v", err, err)
			}
			if e.Line < 1 || e.Col < 1 {
				t.Fatalf("error without a position: %v", e)
			}
			if lines := strings.Count(string(data), "\n") + 1; e.Line > lines {
				t.Fatalf("error at line %d of a %d-line input: %v", e.Line, lines, e)
			}
			if strings.ContainsAny(e.Error(), "\n\r\x1b") {
				t.Fatalf("error message with control characters: %q", e.Error())
			}
			return
		}
		set, rules := merge([]*fileRules{defaultRules(), r})
		for _, p := range append(append(set.AllowWrite, set.DenyWrite...), set.DenyRead...) {
			if !filepath.IsAbs(p) {
				t.Fatalf("relative path %q after parsing", p)
			}
		}
		if len(rules) == 0 {
			t.Fatal("no rules at all (the defaults are missing)")
		}
	})
}

// FuzzPathRules checks path expansion and glob matching on arbitrary input:
// no panics, absolute clean results, and a glob-free pattern matching
// exactly the path it names (its escapes undone).
func FuzzPathRules(f *testing.F) {
	for _, s := range []string{".", "~", "~/.cache", "a/../../b", "/x/**/y", "**/.env*", "[a-", "~bob", "a**b", "/"} {
		f.Add(s, "/a/b/c")
	}
	f.Fuzz(func(t *testing.T, s, p string) {
		abs, err := expandPath(s, "/proj")
		if err == nil {
			if !filepath.IsAbs(abs) || filepath.Clean(abs) != abs {
				t.Fatalf("expandPath(%q) = %q: not absolute and clean", s, abs)
			}
			if !hasGlob(abs) && !MatchPath(abs, literalPath(abs)) {
				t.Fatalf("MatchPath(%q, the path it names) = false", abs)
			}
			if d := "/p[1]*"; !hasGlob(s) && !strings.HasPrefix(s, "~") && !filepath.IsAbs(s) {
				if e, err := expandPath(s, d); err == nil && hasGlob(e) {
					t.Fatalf("expandPath(%q, %q) = %q: glob characters of the directory are not escaped", s, d, e)
				}
			}
		}
		MatchPath(s, p)
		_ = showPath(p, "/proj")
	})
}
