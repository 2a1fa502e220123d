package config

import (
	"path/filepath"
	"strings"
)

// defaultDenyRead is the built-in denyRead set: credentials and browser
// profiles that no sandboxed program needs to read. Paths that do not exist
// on this machine are kept: the sandbox skips what it cannot find.
var defaultDenyRead = []string{
	// Keys and cloud credentials.
	"~/.ssh",
	"~/.gnupg",
	"~/.aws",
	"~/.azure",
	"~/.config/gcloud",
	"~/.kube",
	"~/.docker/config.json",
	"~/.netrc",
	"~/.git-credentials",
	"~/.config/gh/hosts.yml",
	"~/.pypirc",
	"~/.cargo/credentials",
	"~/.cargo/credentials.toml",
	"~/.vault-token",
	"~/.terraform.d/credentials.tfrc.json",
	"~/.password-store",
	"~/.local/share/keyrings",
	"~/.config/op",
	// Shell and REPL histories: tokens typed on a command line, and what
	// the user ran. fence shell keeps its own history per project.
	"~/.bash_history",
	"~/.zsh_history",
	"~/.histfile",
	"~/.local/share/fish/fish_history",
	"~/.python_history",
	"~/.node_repl_history",
	"~/.psql_history",
	"~/.mysql_history",
	"~/.sqlite_history",
	"~/.rediscli_history",
	// Browser and mail profiles (cookies, saved passwords, sessions).
	"~/.mozilla",
	"~/.thunderbird",
	"~/.config/google-chrome",
	"~/.config/chromium",
	"~/.config/BraveSoftware",
	"~/.config/microsoft-edge",
	"~/.config/vivaldi",
	"~/.config/opera",
	"~/.var/app",
	"~/snap/firefox",
	"~/snap/chromium",
	// macOS equivalents.
	"~/Library/Keychains",
	"~/Library/Cookies",
	"~/Library/Application Support/Google/Chrome",
	"~/Library/Application Support/Firefox",
	"~/Library/Application Support/BraveSoftware",
	"~/Library/Safari",
}

// defaultRules is the built-in layer: no network, no writes (the sandbox
// adds its private /tmp and $TMPDIR itself), the default denyRead set.
// Every entry is "~/" and a literal path: expanding it is a join with the
// home directory (its glob characters escaped), without expandPath's
// validation of each segment, which every fence process would otherwise
// run over ~35 paths (≈ 0.1 ms of CPU in a fresh process).
// TestDefaultDenyRead holds the two equal.
func defaultRules() *fileRules {
	r := &fileRules{Layer: LayerDefault, Dir: home()}
	h := escapeGlob(r.Dir)
	r.DenyRead = make([]item, len(defaultDenyRead))
	for i, p := range defaultDenyRead {
		r.DenyRead[i] = item{Value: filepath.Join(h, strings.TrimPrefix(p, "~/"))}
	}
	return r
}
