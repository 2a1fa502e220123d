package completions

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needShell(t *testing.T, name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("FENCE_TEST_STRICT") == "1" {
			t.Fatalf("%s not installed (strict mode)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func write(t *testing.T, shell string) string {
	s, err := Script(shell, []string{"npm", "go", "bad name"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, "@TEMPLATES@") || strings.Contains(s, "bad name") {
		t.Fatalf("templates not filled in safely")
	}
	p := filepath.Join(t.TempDir(), "comp")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(needShell(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestBash(t *testing.T) {
	f := write(t, "bash")
	for _, tc := range []struct{ line, want, not string }{
		{"fence ho", "hook", "shell"},
		{"fence hook ", "zsh", "hook"},
		{"fence -t ", "npm", "hook"},
		{"fence shell --n", "--nested", ""},
		{"fence daemon st", "start", "status2"},
		{"fence --", "--settings", ""},
	} {
		script := `source "$1"; read -ra COMP_WORDS <<<"$2"; [[ $2 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _fence; printf '%s\n' "${COMPREPLY[@]}"`
		out := run(t, "bash", "-c", script, "x", f, tc.line)
		if !strings.Contains(out, tc.want) || (tc.not != "" && strings.Contains(out, tc.not+"\n")) {
			t.Errorf("%q: got %q, want %q", tc.line, out, tc.want)
		}
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(sc, "-s", "bash", f).CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	}
}

func TestFish(t *testing.T) {
	f := write(t, "fish")
	for _, tc := range []struct{ line, want string }{
		{"fence ho", "hook"},
		{"fence hook ", "fish"},
		{"fence -t ", "npm"},
		{"fence shell --", "--nested"},
		{"fence init --template ", "go"},
	} {
		out := run(t, "fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, f, tc.line)
		if !strings.Contains(out, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.line, out, tc.want)
		}
	}
}

func TestZsh(t *testing.T) {
	f := write(t, "zsh")
	dir := filepath.Dir(f)
	if err := os.Rename(f, filepath.Join(dir, "_fence")); err != nil {
		t.Fatal(err)
	}
	// The function must load through compinit's autoloading and register.
	out := run(t, "zsh", "-f", "-c", `fpath=("$1" $fpath); autoload -Uz compinit; compinit -u -d "$1/.zcompdump"; print -r -- "${_comps[fence]}"; autoload +X _fence && print ok`, "x", dir)
	if !strings.Contains(out, "_fence") || !strings.Contains(out, "ok") {
		t.Errorf("zsh did not register the completion: %q", out)
	}
	run(t, "zsh", "-n", filepath.Join(dir, "_fence"))
}

func TestUnknownShell(t *testing.T) {
	if _, err := Script("tcsh", nil); err == nil {
		t.Error("want an error for tcsh")
	}
}
