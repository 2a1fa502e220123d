package config

import (
	"regexp"
	"testing"
)

// The two error-path helpers replaced regular expressions (the regexp
// package's initialisation cost every fence process); each is held equal
// to the expression it replaced.

func TestDefinedKey(t *testing.T) {
	re := regexp.MustCompile(`^Key '(.*)' (has already been defined|was already created.*)\.?$`)
	for _, msg := range []string{
		"Key 'env.pass' has already been defined.",
		"Key 'env.pass' has already been defined",
		"Key 'network' was already created as a hash.",
		"Key 'a.b' was already created and cannot be used as an array.",
		"Key 'it''s' has already been defined.",
		"Key 'x' has already been defined. and more",
		"Key 'x' is odd",
		"key 'x' has already been defined.",
		"Key '' has already been defined.",
		"Expected a value",
		"",
	} {
		key, ok := definedKey(msg)
		m := re.FindStringSubmatch(msg)
		if ok != (m != nil) || ok && key != m[1] {
			t.Errorf("definedKey(%q) = %q, %v; the expression: %q", msg, key, ok, m)
		}
	}
}

func TestKeyArrayEnd(t *testing.T) {
	for _, tc := range []struct{ src, key string }{
		{`{ allowedDomains = ["a"] }`, "allowedDomains"},
		{`{ "allowedDomains" = ["a"] }`, "allowedDomains"},
		{`{allowedDomains=[1]}`, "allowedDomains"},
		{"{ x = 1,\n\tallowedDomains\t=\n [", "allowedDomains"},
		{`allowedDomains = [`, "allowedDomains"},
		{`network.allowedDomains = [`, "allowedDomains"},
		{`{ myallowedDomains = [1], allowedDomains = [2] }`, "allowedDomains"},
		{`{ allowedDomains = 1, allowedDomains = [2] }`, "allowedDomains"},
		{`{ allowedDomains = 1 }`, "allowedDomains"},
		{`{ allowedDomainsX = [1] }`, "allowedDomains"},
		{`{ x"allowedDomains" = [1] }`, "allowedDomains"},
		{`{ "publish" = [1], publish = [2] }`, "publish"},
		{`allowedDomains`, "allowedDomains"},
		{``, "allowedDomains"},
	} {
		re := regexp.MustCompile(`(^|[\s{,.])"?` + regexp.QuoteMeta(tc.key) + `"?\s*=\s*\[`)
		want := -1
		if loc := re.FindStringIndex(tc.src); loc != nil {
			want = loc[1]
		}
		if got := keyArrayEnd(tc.src, tc.key); got != want {
			t.Errorf("keyArrayEnd(%q, %q) = %d, the expression: %d", tc.src, tc.key, got, want)
		}
	}
}
