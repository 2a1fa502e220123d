package sandbox

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ProtectedPath is one path the sandbox may never write, whatever the
// policy says (DESIGN.md §6.3). The path may not exist yet: creating it is
// as forbidden as writing it.
type ProtectedPath struct {
	// Path is absolute and clean.
	Path string
	// Dir reports whether the whole tree under Path is protected, not only
	// the entry itself.
	Dir bool
	// Reason says, for messages and `fence config show`, why it is protected.
	Reason string
}

// ProtectedName is a path, relative to any directory the sandbox can write,
// that is protected wherever it appears: in every repository and tool
// directory under a writable path, at any depth, existing or not.
type ProtectedName struct {
	// Name is slash-separated and relative (".git/hooks", ".envrc"). A "*"
	// element matches exactly one path element (".git/modules/*/config").
	Name string
	// Dir reports whether the whole tree under Name is protected.
	Dir bool
	// Reason says why it is protected.
	Reason string
	// GitConfig marks .git/config, which AllowGitConfig leaves writable.
	GitConfig bool
}

// homeProtected are relative to the home directory.
var homeProtected = []ProtectedName{
	{Name: ".bashrc", Reason: "shell startup file"},
	{Name: ".bash_profile", Reason: "shell startup file"},
	{Name: ".bash_login", Reason: "shell startup file"},
	{Name: ".bash_logout", Reason: "shell startup file"},
	{Name: ".profile", Reason: "shell startup file"},
	{Name: ".zshrc", Reason: "shell startup file"},
	{Name: ".zshenv", Reason: "shell startup file"},
	{Name: ".zprofile", Reason: "shell startup file"},
	{Name: ".zlogin", Reason: "shell startup file"},
	{Name: ".zlogout", Reason: "shell startup file"},
	{Name: ".inputrc", Reason: "shell startup file"},
	{Name: ".bash_aliases", Reason: "shell startup file"}, // sourced by Debian's .bashrc
	{Name: ".bashrc.d", Dir: true, Reason: "shell startup file"},
	{Name: ".oh-my-zsh/custom", Dir: true, Reason: "shell startup file"},
	{Name: ".xsessionrc", Reason: "login file"},
	{Name: ".xprofile", Reason: "login file"},
	{Name: ".pam_environment", Reason: "login file"},
	{Name: ".tmux.conf", Reason: "terminal multiplexer startup file"},
	{Name: ".config/tmux", Dir: true, Reason: "terminal multiplexer startup file"},
	{Name: ".vimrc", Reason: "editor startup file"},
	{Name: ".exrc", Reason: "editor startup file"},
	{Name: ".vim", Dir: true, Reason: "editor startup file"},
	{Name: ".config/nvim", Dir: true, Reason: "editor startup file"},
	{Name: ".config/Code/User", Dir: true, Reason: "editor tasks"},
	{Name: ".config/direnv", Dir: true, Reason: "runs code on cd"},
	{Name: ".npmrc", Reason: "package manager configuration"}, // node-options, script-shell
	// Python imports the user site-packages (*.pth, usercustomize, every
	// installed package) at every start: the whole of ~/.local/lib, so
	// "pip install --user" does not work inside (use a venv in the project).
	{Name: ".local/lib", Dir: true, Reason: "persistence point"},
	{Name: ".local/share/applications", Dir: true, Reason: "persistence point"},
	{Name: ".config/fish", Dir: true, Reason: "shell startup file"},
	{Name: ".gitconfig", Reason: "git configuration"},
	{Name: ".config/git", Dir: true, Reason: "git configuration"},
	{Name: ".ssh", Dir: true, Reason: "persistence point"},
	{Name: ".config/autostart", Dir: true, Reason: "persistence point"},
	{Name: ".config/systemd", Dir: true, Reason: "persistence point"},
	{Name: ".config/environment.d", Dir: true, Reason: "persistence point"},
	{Name: ".local/bin", Dir: true, Reason: "persistence point"},
	// More of the user's session runs from these: user units and D-Bus
	// services activated by name (a notification daemon, say) from the
	// data directory too, file-type handlers, KDE's login scripts, X
	// session scripts.
	{Name: ".local/share/systemd", Dir: true, Reason: "persistence point"},
	{Name: ".local/share/dbus-1", Dir: true, Reason: "persistence point"},
	{Name: ".config/mimeapps.list", Reason: "persistence point"},
	{Name: ".config/plasma-workspace", Dir: true, Reason: "persistence point"},
	{Name: ".xinitrc", Reason: "login file"},
	{Name: ".xsession", Reason: "login file"},
	// Build tools and REPLs run these at their next start, on the host
	// too: init scripts, JVM options (-javaagent), wrappers, preloads.
	{Name: ".gradle/init.d", Dir: true, Reason: "build tool startup file"},
	{Name: ".gradle/init.gradle", Reason: "build tool startup file"},
	{Name: ".gradle/gradle.properties", Reason: "build tool startup file"},
	{Name: ".mavenrc", Reason: "build tool startup file"},
	{Name: ".cargo/config.toml", Reason: "build tool startup file"},
	{Name: ".cargo/config", Reason: "build tool startup file"},
	{Name: ".yarnrc", Reason: "package manager configuration"},
	{Name: ".yarnrc.yml", Reason: "package manager configuration"},
	{Name: ".bunfig.toml", Reason: "package manager configuration"},
	{Name: ".ipython/profile_default/startup", Dir: true, Reason: "REPL startup file"},
	{Name: ".psqlrc", Reason: "REPL startup file"},
	{Name: ".gdbinit", Reason: "debugger startup file"},
	{Name: ".config/gdb", Dir: true, Reason: "debugger startup file"},
	{Name: ".lldbinit", Reason: "debugger startup file"},
	{Name: ".screenrc", Reason: "terminal multiplexer startup file"},
	{Name: ".emacs", Reason: "editor startup file"},
	{Name: ".emacs.d", Dir: true, Reason: "editor startup file"},
	{Name: ".config/emacs", Dir: true, Reason: "editor startup file"},
	// Sourced by the lines installers add to the shell startup files
	// (rustup, nvm, SDKMAN!), and what bash and fish load by themselves
	// (red team of the eleventh session: ~/.cargo/env ran in the next
	// host bash).
	{Name: ".cargo/env", Reason: "shell startup file"},
	{Name: ".nvm/nvm.sh", Reason: "shell startup file"},
	{Name: ".nvm/bash_completion", Reason: "shell startup file"},
	{Name: ".sdkman/bin", Dir: true, Reason: "shell startup file"},
	{Name: ".bash_completion", Reason: "shell startup file"},
	{Name: ".local/share/bash-completion", Dir: true, Reason: "shell startup file"},
	{Name: ".local/share/fish/vendor_conf.d", Dir: true, Reason: "shell startup file"},
	{Name: ".local/share/fish/vendor_functions.d", Dir: true, Reason: "shell startup file"},
	{Name: ".local/share/fish/vendor_completions.d", Dir: true, Reason: "shell startup file"},
	{Name: ".selected_editor", Reason: "shell startup file"}, // sourced by sensible-editor
	// Plugins neovim loads at start (site/, plugin managers' trees).
	{Name: ".local/share/nvim", Dir: true, Reason: "editor startup file"},
	// Terminals and window managers run programs named in their
	// configuration.
	{Name: ".config/alacritty", Dir: true, Reason: "terminal startup file"},
	{Name: ".config/kitty", Dir: true, Reason: "terminal startup file"},
	{Name: ".config/wezterm", Dir: true, Reason: "terminal startup file"},
	{Name: ".wezterm.lua", Reason: "terminal startup file"},
	{Name: ".config/foot", Dir: true, Reason: "terminal startup file"},
	{Name: ".config/ghostty", Dir: true, Reason: "terminal startup file"},
	{Name: ".config/i3", Dir: true, Reason: "persistence point"},
	{Name: ".config/sway", Dir: true, Reason: "persistence point"},
	{Name: ".config/hypr", Dir: true, Reason: "persistence point"},
	{Name: ".config/user-tmpfiles.d", Dir: true, Reason: "persistence point"}, // applied by systemd at login
	// Tools whose configuration names a command they run: kubectl's exec
	// credential plugins, the AWS CLI's credential_process, Docker's CLI
	// plugins and credential helpers, gpg-agent's pinentry, mailcap
	// viewers, pip's index. Most are in denyRead too, which hides them
	// only when they exist at start. Their files, not their directories:
	// the tools keep caches beside them.
	{Name: ".kube/config", Reason: "runs commands named in it"},
	{Name: ".aws/config", Reason: "runs commands named in it"},
	{Name: ".aws/credentials", Reason: "runs commands named in it"},
	{Name: ".docker/config.json", Reason: "runs commands named in it"},
	{Name: ".docker/cli-plugins", Dir: true, Reason: "runs commands named in it"},
	{Name: ".gnupg/gpg.conf", Reason: "runs commands named in it"},
	{Name: ".gnupg/gpg-agent.conf", Reason: "runs commands named in it"},
	{Name: ".gnupg/dirmngr.conf", Reason: "runs commands named in it"},
	{Name: ".gnupg/scdaemon.conf", Reason: "runs commands named in it"},
	{Name: ".mailcap", Reason: "runs commands named in it"},
	{Name: ".config/pip/pip.conf", Reason: "package manager configuration"},
	{Name: ".pip/pip.conf", Reason: "package manager configuration"},
	{Name: ".Rprofile", Reason: "REPL startup file"},
	{Name: ".irbrc", Reason: "REPL startup file"},
	{Name: ".pryrc", Reason: "REPL startup file"},
	{Name: ".ghci", Reason: "REPL startup file"},
	{Name: ".sqliterc", Reason: "REPL startup file"},
	// macOS runs these at login; harmless to list on Linux.
	{Name: "Library/LaunchAgents", Dir: true, Reason: "persistence point"},
}

// repoProtected are protected in every directory under a writable path.
var repoProtected = []ProtectedName{
	{Name: ".git/hooks", Dir: true, Reason: "git hooks"},
	{Name: ".git/config", Reason: "git configuration", GitConfig: true},
	{Name: ".git/info", Dir: true, Reason: "git configuration"},
	{Name: ".git/commondir", Reason: "git configuration"},
	{Name: ".git/config.worktree", Reason: "git configuration", GitConfig: true},
	{Name: ".git/worktrees", Dir: true, Reason: "git configuration"},
	{Name: ".git/modules/*/config", Reason: "git configuration"},
	{Name: ".git/modules/*/hooks", Dir: true, Reason: "git hooks"},
	{Name: ".husky", Dir: true, Reason: "git hooks"},
	{Name: ".githooks", Dir: true, Reason: "git hooks"},
	{Name: ".pre-commit-config.yaml", Reason: "git hooks"},
	{Name: "lefthook.yml", Reason: "git hooks"},
	{Name: ".lefthook.yml", Reason: "git hooks"},
	{Name: "lefthook-local.yml", Reason: "git hooks"},
	{Name: ".lefthook-local.yml", Reason: "git hooks"},
	{Name: ".overcommit.yml", Reason: "git hooks"},
	{Name: ".hg/hgrc", Reason: "mercurial hooks"},
	{Name: "mise.toml", Reason: "runs code on cd"},
	{Name: ".mise.toml", Reason: "runs code on cd"},
	{Name: "mise.local.toml", Reason: "runs code on cd"},
	{Name: ".exrc", Reason: "editor startup file"},
	{Name: ".nvim.lua", Reason: "editor startup file"},
	{Name: ".nvimrc", Reason: "editor startup file"},
	{Name: ".zed", Dir: true, Reason: "editor tasks"},
	{Name: ".github/hooks", Dir: true, Reason: "agent configuration"},
	{Name: ".gitmodules", Reason: "git configuration"},
	{Name: ".envrc", Reason: "runs code on cd"},
	{Name: ".vscode", Dir: true, Reason: "editor tasks"},
	{Name: ".idea", Dir: true, Reason: "editor tasks"},
	{Name: ".devcontainer", Dir: true, Reason: "editor tasks"},
	{Name: ".mcp.json", Reason: "agent configuration"},
	{Name: ".claude", Dir: true, Reason: "agent configuration"},
	{Name: ".cursor", Dir: true, Reason: "agent configuration"},
	// Other coding agents' project settings: MCP servers and hooks they
	// start, commands they run (aider's lint-cmd and test-cmd).
	{Name: ".gemini", Dir: true, Reason: "agent configuration"},
	{Name: ".codex", Dir: true, Reason: "agent configuration"},
	{Name: ".kiro", Dir: true, Reason: "agent configuration"},
	{Name: ".amazonq", Dir: true, Reason: "agent configuration"},
	{Name: ".continue", Dir: true, Reason: "agent configuration"},
	{Name: ".roo", Dir: true, Reason: "agent configuration"},
	{Name: ".opencode", Dir: true, Reason: "agent configuration"},
	{Name: "opencode.json", Reason: "agent configuration"},
	{Name: "opencode.jsonc", Reason: "agent configuration"},
	{Name: ".aider.conf.yml", Reason: "agent configuration"},
	// A nearer project config would make a later session in that directory
	// its own project (the enclosing denies still apply, see config.Load).
	{Name: ".fence.toml", Reason: "fence configuration"},
}

// ShellWritable returns the cleaned p.ShellWrite paths that lie strictly
// inside p.ShellDir: the only ones a backend makes writable there.
func ShellWritable(p Policy) []string {
	if p.ShellDir == "" {
		return nil
	}
	dir := filepath.Clean(p.ShellDir)
	var out []string
	for _, w := range p.ShellWrite {
		w = filepath.Clean(w)
		if filepath.IsAbs(w) && strings.HasPrefix(w, dir+"/") {
			out = append(out, w)
		}
	}
	return out
}

// SystemConfigDir is the system policy directory, always protected.
const SystemConfigDir = "/etc/fence"

// ProtectedNames returns the names protected in every directory under a
// writable path (see [ProtectedName]), honouring p.AllowGitConfig. A
// backend that can match names at any depth (Seatbelt regexes) uses this
// list directly; one that cannot walks the writable paths with it.
func ProtectedNames(p Policy) []ProtectedName {
	out := make([]ProtectedName, 0, len(repoProtected))
	for _, n := range repoProtected {
		if n.GitConfig && p.AllowGitConfig {
			continue
		}
		out = append(out, n)
	}
	return out
}

// ProtectedPaths returns the always-protected paths of a session, without
// touching the filesystem: the shell startup files and persistence points
// under home, the [ProtectedNames] at the top of every p.AllowWrite path
// (names with a "*" element are left to [ResolveProtected]), fence's own
// files (p.ConfigFiles, p.StateDirs, p.ShellDir, [SystemConfigDir]) and the
// fence binary exe (skipped when empty). The result is sorted and free of
// duplicates.
func ProtectedPaths(p Policy, home, exe string) []ProtectedPath {
	var out []ProtectedPath
	if home != "" {
		for _, n := range homeProtected {
			out = append(out, ProtectedPath{Path: filepath.Join(home, filepath.FromSlash(n.Name)), Dir: n.Dir, Reason: n.Reason})
		}
	}
	names := ProtectedNames(p)
	for _, root := range p.AllowWrite {
		for _, n := range names {
			if strings.Contains(n.Name, "*") {
				continue
			}
			out = append(out, ProtectedPath{Path: filepath.Join(root, filepath.FromSlash(n.Name)), Dir: n.Dir, Reason: n.Reason})
		}
	}
	for _, f := range p.ConfigFiles {
		out = append(out, ProtectedPath{Path: filepath.Clean(f), Reason: "fence configuration"})
	}
	for _, d := range p.StateDirs {
		out = append(out, ProtectedPath{Path: filepath.Clean(d), Dir: true, Reason: "fence state"})
	}
	if p.ShellDir != "" {
		out = append(out, ProtectedPath{Path: filepath.Clean(p.ShellDir), Dir: true, Reason: "fence shell state"})
	}
	out = append(out, ProtectedPath{Path: SystemConfigDir, Dir: true, Reason: "fence system policy"})
	if exe != "" {
		out = append(out, ProtectedPath{Path: filepath.Clean(exe), Reason: "fence binary"})
	}
	return dedupe(out)
}

// ResolveProtected returns [ProtectedPaths] plus what only the filesystem
// can tell: the existing .git/modules/*/{config,hooks} of every writable
// repository, and the directory each repository's core.hooksPath names.
// Paths that do not exist are still listed (they must not be created).
func ResolveProtected(p Policy, home, exe string) []ProtectedPath {
	out := ProtectedPaths(p, home, exe)
	for _, root := range p.AllowWrite {
		for _, n := range ProtectedNames(p) {
			if !strings.Contains(n.Name, "*") {
				continue
			}
			// Glob the directories up to the last "*" only: what follows
			// need not exist yet to be protected.
			i := strings.LastIndex(n.Name, "*")
			dirs, rest := n.Name[:i+1], n.Name[i+1:]
			matches, _ := filepath.Glob(filepath.Join(escapeGlob(root), filepath.FromSlash(dirs)))
			for _, m := range matches {
				if fi, err := os.Stat(m); err != nil || !fi.IsDir() {
					continue
				}
				out = append(out, ProtectedPath{Path: filepath.Join(m, filepath.FromSlash(rest)), Dir: n.Dir, Reason: n.Reason})
			}
		}
		if hp := gitHooksPath(filepath.Join(root, ".git", "config")); hp != "" {
			if strings.HasPrefix(hp, "~/") && home != "" {
				hp = filepath.Join(home, hp[2:])
			} else if !filepath.IsAbs(hp) {
				// Relative hooksPath is relative to the work tree root.
				hp = filepath.Join(root, hp)
			}
			out = append(out, ProtectedPath{Path: filepath.Clean(hp), Dir: true, Reason: "git hooks (core.hooksPath)"})
		}
	}
	return dedupe(out)
}

// gitHooksPath reads core.hooksPath from a git config file; it understands
// the plain "[core]\n\thooksPath = X" form git itself writes.
func gitHooksPath(config string) string {
	b, err := readFollowed(config)
	if err != nil {
		return ""
	}
	var section, value string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = strings.ToLower(strings.Trim(line, "[] \t"))
			continue
		}
		if section != "core" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "hooksPath") {
			value = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return value
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

func dedupe(in []ProtectedPath) []ProtectedPath {
	sort.SliceStable(in, func(i, j int) bool { return in[i].Path < in[j].Path })
	out := in[:0]
	for _, pp := range in {
		if n := len(out); n > 0 && out[n-1].Path == pp.Path {
			out[n-1].Dir = out[n-1].Dir || pp.Dir
			continue
		}
		out = append(out, pp)
	}
	return out
}
