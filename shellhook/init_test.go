//go:build unix

package shellhook

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepareChainsUserRC starts each shell with the generated init
// (outside any sandbox: tests only) and checks that the user's own rc files
// ran first, fence's init after them, and that zsh's ZDOTDIR is the user's
// again afterwards.
func TestPrepareChainsUserRC(t *testing.T) {
	for _, sh := range Shells {
		t.Run(sh, func(t *testing.T) {
			bin := needTool(t, sh)
			home := t.TempDir()
			zdot := filepath.Join(home, "zdot")
			os.MkdirAll(zdot, 0o755)
			os.MkdirAll(filepath.Join(home, ".config/fish"), 0o755)
			os.WriteFile(filepath.Join(home, ".bashrc"), []byte("USER_RC=bashrc\nPS1='u> '\n"), 0o644)
			os.WriteFile(filepath.Join(zdot, ".zshenv"), []byte("USER_ENV=zshenv\n"), 0o644)
			os.WriteFile(filepath.Join(zdot, ".zshrc"), []byte("USER_RC=zshrc\nPS1='u> '\n"), 0o644)
			os.WriteFile(filepath.Join(home, ".config/fish/config.fish"), []byte("set -g USER_RC fishrc\n"), 0o644)
			sess := filepath.Join(home, "sess")
			os.MkdirAll(sess, 0o700)
			l, err := Prepare(Session{
				Shell: bin, Fence: "/usr/bin/fence", Root: home, Marker: "(fence:x) ", Prompt: "(fence:x)",
				Dir: sess, Handoff: filepath.Join(sess, "handoff"), Notice: filepath.Join(sess, "notice"),
				HistoryDir: filepath.Join(home, "hist"), UserZDOTDIR: zdot,
			})
			if err != nil {
				t.Fatal(err)
			}
			probe := map[string]string{
				"bash": `echo "R=$USER_RC P=$FENCE_PROMPT H=$HISTFILE F=$(type -t fence)"`,
				"zsh":  `echo "R=$USER_RC E=$USER_ENV P=$FENCE_PROMPT H=$HISTFILE Z=$ZDOTDIR F=$(whence -w fence)"`,
				"fish": `echo "R=$USER_RC P=$FENCE_PROMPT F="(functions -q fence; and echo function)`,
			}[sh]
			args := append([]string{}, l.Args[1:]...)
			switch sh {
			case "bash":
				// --rcfile is read by interactive shells; feed the probe on stdin.
			case "zsh":
				args = append(args, "-c", probe)
			case "fish":
				args = append(args, "-c", probe)
			}
			cmd := exec.Command(l.Args[0], args...)
			cmd.Env = append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "TERM=dumb", "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}, l.Env...)
			if sh == "bash" {
				cmd.Stdin = strings.NewReader(probe + "\nexit\n")
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
			}
			s := string(out)
			for _, want := range []string{"R=" + map[string]string{"bash": "bashrc", "zsh": "zshrc", "fish": "fishrc"}[sh], "P=(fence:x)"} {
				if !strings.Contains(s, want) {
					t.Errorf("want %q in %q", want, s)
				}
			}
			switch sh {
			case "bash":
				if !strings.Contains(s, "H="+filepath.Join(home, "hist", "bash_history")) || !strings.Contains(s, "F=function") {
					t.Errorf("bash init: %q", s)
				}
			case "zsh":
				if !strings.Contains(s, "E=zshenv") || !strings.Contains(s, "Z="+zdot+" ") || !strings.Contains(s, "H="+filepath.Join(home, "hist", "zsh_history")) || !strings.Contains(s, "F=fence: function") {
					t.Errorf("zsh init: %q", s)
				}
			case "fish":
				if !strings.Contains(s, "F=function") {
					t.Errorf("fish init: %q", s)
				}
			}
		})
	}
}

func TestProjectName(t *testing.T) {
	for in, want := range map[string]string{
		"/src/my-app":                     "my-app",
		"/src/$(rm -rf ~)":                "__rm_-rf___",
		"/src/%F{red}x":                   "_F_red_x",
		"/":                               "root",
		"/src/" + strings.Repeat("a", 40): strings.Repeat("a", 32),
	} {
		if got := ProjectName(in); got != want {
			t.Errorf("ProjectName(%q) = %q, want %q", in, got, want)
		}
	}
	if HistoryKey("/a/x") == HistoryKey("/b/x") {
		t.Error("history keys collide for projects with the same name")
	}
}

// TestInitBashShellcheck runs shellcheck on a generated bash init file.
func TestInitBashShellcheck(t *testing.T) {
	sc := needTool(t, "shellcheck")
	dir := t.TempDir()
	l, err := Prepare(Session{
		Shell: "/bin/bash", Fence: "/usr/bin/fence", Root: "/src/p", Marker: "(fence:p) ", Prompt: "(fence:p)",
		Dir: dir, Handoff: dir + "/handoff", Notice: dir + "/notice", HistoryDir: dir + "/hist",
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sc, "-s", "bash", l.Args[2]).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", l.Args[2], err, out)
	}
}
