package sandbox_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// TestShellDirReadOnly: fence shell's directory (session files, every
// project's history) is read-only in a sandbox that may write the home
// directory, but for the session's own history, where bash appends and zsh
// and fish replace their files by rename. Before, such a sandbox could
// replace sessions/ or a notice file with a link that fence then followed
// on the host (deleting the user's directories, overwriting
// ~/.ssh/authorized_keys), and rewrite other projects' histories.
func TestShellDirReadOnly(t *testing.T) {
	e := sandboxtest.New(t, writeDot)
	sd := filepath.Join(e.Home, ".local", "state", "fence-shell")
	own := filepath.Join(sd, "history", "proj-own")
	other := filepath.Join(sd, "history", "other-1")
	session := filepath.Join(sd, "sessions", "1-abc")
	for _, d := range []string{own, other, session} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	host := map[string]string{
		filepath.Join(session, "notice"):                 "",
		filepath.Join(other, "bash"):                     "other's history\n",
		filepath.Join(own, "bash"):                       "echo before\n",
		filepath.Join(e.Home, ".ssh", "authorized_keys"): "ssh-ed25519 AAAA user\n",
	}
	for p, c := range host {
		if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const script = `
try() { name=$1; shift; if ( eval "$*" ) >/dev/null 2>&1; then echo "$name:ok"; else echo "$name:denied"; fi; }
try home 'echo x > ~/plain.txt'
try notice-write 'echo evil > "$SD/sessions/1-abc/notice"'
try notice-link 'ln -sfn ~/.ssh/authorized_keys "$SD/sessions/1-abc/notice"'
try session-new 'mkdir "$SD/sessions/2-def"'
try other-history 'echo evil >> "$SD/history/other-1/bash"'
try other-history-rename 'echo evil > "$SD/history/other-1/t" && mv "$SD/history/other-1/t" "$SD/history/other-1/bash"'
try history-new 'mkdir "$SD/history/planted"'
try own-append 'echo "echo appended" >> "$SD/history/proj-own/bash"'
try own-rename 'echo "echo renamed" > "$SD/history/proj-own/.zsh_history.new" && mv "$SD/history/proj-own/.zsh_history.new" "$SD/history/proj-own/zsh_history"'
try own-fish 'mkdir -p "$SD/history/proj-own/fish" && echo "- cmd: fish" > "$SD/history/proj-own/fish/fish_history"'
# Last: without the protection, these move everything away.
try own-move 'mv "$SD/history/proj-own" "$SD/history/proj-own.old"'
try sessions-move 'mv "$SD/sessions" "$SD/s.old"'
try shelldir-move 'mv "$SD" "$SD.old"'
try state-move 'mv ~/.local/state ~/.local/sx'
`
	out := driver(t, e, "-write", e.Home, "-shell-dir", sd, "-shell-write", own,
		"env", "SD="+sd, "sh", "-c", script)
	want := map[string]string{
		"home": "ok", "own-append": "ok", "own-rename": "ok", "own-fish": "ok",
		"notice-write": "denied", "notice-link": "denied", "session-new": "denied", "sessions-move": "denied",
		"shelldir-move": "denied", "state-move": "denied", "other-history": "denied", "other-history-rename": "denied",
		"history-new": "denied", "own-move": "denied",
	}
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			got[k] = v
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %s", k, got[k], w)
		}
	}
	if t.Failed() {
		t.Logf("driver output:\n%s", out)
	}
	for p, c := range host {
		if p == filepath.Join(own, "bash") {
			c += "echo appended\n"
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != c {
			t.Errorf("%s on the host: %q (%v), want %q", p, b, err, c)
		}
	}
	if fi, err := os.Lstat(filepath.Join(session, "notice")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the notice file was replaced: %v", err)
	}
	for _, p := range []string{filepath.Join(own, "zsh_history"), filepath.Join(own, "fish", "fish_history")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the session's own history: %v", err)
		}
	}
}
