//go:build unix

package shellhook

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("FENCE_TEST_STRICT") == "1" {
			t.Fatalf("%s not installed (strict mode)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func TestHookQuoting(t *testing.T) {
	for _, sh := range Shells {
		s, err := Hook(sh, HookOptions{Fence: "/opt/it's $(evil)/fence", AutoEnter: []string{"/home/u/src/third-party/*"}})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s, "@FENCE@") || strings.Contains(s, "@AUTOENTER@") {
			t.Errorf("%s: placeholder left", sh)
		}
	}
	if _, err := Hook("bash", HookOptions{Fence: "fence"}); err == nil {
		t.Error("relative fence path accepted (ATTACKS.md H-03)")
	}
	if _, err := Hook("tcsh", HookOptions{Fence: "/x"}); err == nil {
		t.Error("unknown shell accepted")
	}
}

func TestHookSyntax(t *testing.T) {
	for _, sh := range Shells {
		bin := needTool(t, sh)
		s, _ := Hook(sh, HookOptions{Fence: "/usr/bin/fence", AutoEnter: []string{"/a/*"}})
		f := filepath.Join(t.TempDir(), "hook")
		os.WriteFile(f, []byte(s), 0o644)
		if out, err := exec.Command(bin, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
		if sh == "bash" {
			if sc, err := exec.LookPath("shellcheck"); err == nil {
				if out, err := exec.Command(sc, "-s", "bash", f).CombinedOutput(); err != nil {
					t.Errorf("shellcheck: %v\n%s", err, out)
				}
			}
		}
	}
}

// runInPTY runs argv with a terminal as stdin/stdout (the hook only acts in
// interactive shells with a terminal) and returns its output.
func runInPTY(t *testing.T, dir string, env []string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, f); close(done) }()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%v timed out; output: %s", argv, buf.String())
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	f.Close()
	return strings.ReplaceAll(buf.String(), "\r", "")
}

// fakeFence is a stand-in for the fence binary that records its calls and
// writes a canned result, so that the hook's logic can be tested alone. It
// never starts a shell.
const fakeFence = `#!/bin/sh
echo "$PWD $*" >>"$FAKE_LOG"
for a; do
	case $a in --hook-result=*) res=${a#--hook-result=} ;; esac
done
mkdir -p "$(dirname "$res")"
if [ -s "$FAKE_NEXT" ]; then cat "$FAKE_NEXT" >"$res"; : >"$FAKE_NEXT"; fi
exit 3
`

// The scripts below drive the hook as the shell would at each prompt and
// print KEY=VALUE lines. They are run under strace when it is there, to
// prove that a prompt costs no process when no project is entered.
var hookScripts = map[string]string{
	"bash": `
source "$HOOK"
source "$HOOK"
echo "PC=${PROMPT_COMMAND[*]}"
PROMPT_COMMAND=(_fence_hook 'x=1' other); source "$HOOK"; echo "PCA=${PROMPT_COMMAND[*]}"
PROMPT_COMMAND='_fence_hook;y=2'
cd "$T/plain/a/b"
false; _fence_hook; echo "ST=$?"
echo FORKS-START
for ((i = 0; i < 20; i++)); do cd "$T/plain"; _fence_hook; cd "$T/plain/a/b"; _fence_hook; done
echo FORKS-END
cd "$T/proj/sub"; _fence_hook; echo "ENTER1=$PWD EST=$?"
_fence_hook; _fence_hook; echo "AGAIN=$PWD"
cd "$T/proj"; _fence_hook; echo "SAME-ROOT=$PWD"
cd "$T/plain"; _fence_hook; cd "$T/proj"; echo "$T/other" >"$FAKE_NEXT"; _fence_hook; echo "LEFT-TO=$PWD"
FENCE_HOOK=off; cd "$T/proj2"; _fence_hook; echo "OFF=$PWD"; FENCE_HOOK=
cd "$T/plain"; _fence_hook; VSCODE_RESOLVING_ENVIRONMENT=1; cd "$T/proj2"; _fence_hook; unset VSCODE_RESOLVING_ENVIRONMENT
cd "$T/auto/x/y"; _fence_hook
echo END
`,
	"zsh": `
source "$HOOK"
source "$HOOK"
echo "PC=${precmd_functions[*]} CH=${chpwd_functions[*]}"
cd "$T/plain/a/b"
false; _fence_hook; echo "ST=$?"
echo FORKS-START
for ((i = 0; i < 20; i++)); do cd "$T/plain"; _fence_hook; cd "$T/plain/a/b"; _fence_hook; done
echo FORKS-END
cd "$T/proj/sub"; _fence_hook; echo "ENTER1=$PWD EST=$?"
_fence_hook; _fence_hook; echo "AGAIN=$PWD"
cd "$T/proj"; _fence_hook; echo "SAME-ROOT=$PWD"
cd "$T/plain"; _fence_hook; cd "$T/proj"; echo "$T/other" >"$FAKE_NEXT"; _fence_hook; echo "LEFT-TO=$PWD"
FENCE_HOOK=off; cd "$T/proj2"; _fence_hook; echo "OFF=$PWD"; FENCE_HOOK=
cd "$T/plain"; _fence_hook; VSCODE_RESOLVING_ENVIRONMENT=1; cd "$T/proj2"; _fence_hook; unset VSCODE_RESOLVING_ENVIRONMENT
cd "$T/auto/x/y"; _fence_hook
echo END
`,
	"fish": `
source $HOOK
source $HOOK
echo "PC="(functions -q _fence_on_prompt; and echo ok)
cd $T/plain/a/b
false; emit fish_prompt; echo "ST=$status"
echo FORKS-START
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; cd $T/plain; emit fish_prompt; cd $T/plain/a/b; emit fish_prompt; end
echo FORKS-END
cd $T/proj/sub; emit fish_prompt; echo "ENTER1=$PWD"
emit fish_prompt; emit fish_prompt; echo "AGAIN=$PWD"
cd $T/proj; emit fish_prompt; echo "SAME-ROOT=$PWD"
cd $T/plain; emit fish_prompt; cd $T/proj; echo $T/other >$FAKE_NEXT; emit fish_prompt; echo "LEFT-TO=$PWD"
set -g FENCE_HOOK off; cd $T/proj2; emit fish_prompt; echo "OFF=$PWD"; set -e FENCE_HOOK
cd $T/plain; emit fish_prompt; set -gx VSCODE_RESOLVING_ENVIRONMENT 1; cd $T/proj2; emit fish_prompt; set -e VSCODE_RESOLVING_ENVIRONMENT
cd $T/auto/x/y; emit fish_prompt
echo END
`,
}

func TestHookLifecycle(t *testing.T) {
	for _, sh := range Shells {
		t.Run(sh, func(t *testing.T) { testHookLifecycle(t, sh) })
	}
}

func testHookLifecycle(t *testing.T, sh string) {
	bin := needTool(t, sh)
	T := t.TempDir()
	for _, d := range []string{"plain/a/b", "proj/sub", "proj2", "other", "auto/x/y", "state"} {
		os.MkdirAll(filepath.Join(T, d), 0o755)
	}
	for _, p := range []string{"proj", "proj2", "other"} {
		os.WriteFile(filepath.Join(T, p, ".fence.toml"), nil, 0o644)
	}
	fake := filepath.Join(T, "fake fence")
	os.WriteFile(fake, []byte(fakeFence), 0o755)
	hook, err := Hook(sh, HookOptions{Fence: fake, AutoEnter: []string{filepath.Join(T, "auto") + "/*"}})
	if err != nil {
		t.Fatal(err)
	}
	hookFile := filepath.Join(T, "hook")
	os.WriteFile(hookFile, []byte(hook), 0o644)
	script := filepath.Join(T, "script")
	os.WriteFile(script, []byte(hookScripts[sh]), 0o644)
	log := filepath.Join(T, "log")
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + T, "TERM=dumb", "T=" + T, "HOOK=" + hookFile,
		"FAKE_LOG=" + log, "FAKE_NEXT=" + filepath.Join(T, "next"), "XDG_STATE_HOME=" + filepath.Join(T, "state"),
	}
	argv := map[string][]string{
		"bash": {bin, "--norc", "--noprofile", "-i", script},
		"zsh":  {bin, "-f", "-i", script},
		"fish": {bin, "--no-config", "-i", script},
	}[sh]
	trace := filepath.Join(T, "trace")
	strace, err := exec.LookPath("strace")
	if err == nil {
		argv = append([]string{strace, "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork", "-o", trace}, argv...)
	} else if os.Getenv("FENCE_TEST_STRICT") == "1" {
		t.Fatal("strace not installed (strict mode): cannot prove the hook does not fork")
	}
	out := runInPTY(t, T, env, argv...)
	if !strings.Contains(out, "END") {
		t.Fatalf("script did not finish:\n%s", out)
	}
	vals := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		for _, f := range strings.Fields(l) {
			if k, v, ok := strings.Cut(f, "="); ok && strings.ToUpper(k) == k {
				vals[k] = v
			}
		}
	}
	calls, _ := os.ReadFile(log)
	t.Logf("fence calls:\n%s", calls)
	want := func(k, v string) {
		t.Helper()
		if vals[k] != v {
			t.Errorf("%s = %q, want %q\noutput:\n%s", k, vals[k], v, out)
		}
	}
	switch sh {
	case "bash":
		// Installed once, first, in both forms, not clobbering others.
		if !strings.HasPrefix(out[strings.Index(out, "PC="):], "PC=_fence_hook\n") {
			t.Errorf("string PROMPT_COMMAND: %q", vals["PC"])
		}
		if !strings.Contains(out, "PCA=_fence_hook x=1 other") {
			t.Errorf("array PROMPT_COMMAND clobbered or duplicated:\n%s", out)
		}
	case "zsh":
		want("PC", "_fence_hook")
		want("CH", "_fence_chpwd")
	case "fish":
		want("PC", "ok")
	}
	if sh != "fish" {
		want("ST", "1") // $? survives the hook
	}
	// Entering: fence shell called from the project (sub)dir, exit status 3
	// kept; afterwards no re-entry in the same root.
	want("ENTER1", filepath.Join(T, "proj/sub"))
	if sh != "fish" {
		want("EST", "3")
	}
	want("AGAIN", filepath.Join(T, "proj/sub"))
	want("SAME-ROOT", filepath.Join(T, "proj"))
	// The handed-back directory is another root: the hook cds there and
	// enters it at once.
	want("LEFT-TO", filepath.Join(T, "other"))
	want("OFF", filepath.Join(T, "proj2"))
	lines := strings.Split(strings.TrimSpace(string(calls)), "\n")
	wantCalls := []string{
		filepath.Join(T, "proj/sub"),
		filepath.Join(T, "proj"),
		filepath.Join(T, "other"),
		filepath.Join(T, "auto/x/y"),
	}
	if len(lines) != len(wantCalls) {
		t.Fatalf("fence called %d times, want %d:\n%s", len(lines), len(wantCalls), calls)
	}
	for i, w := range wantCalls {
		if !strings.HasPrefix(lines[i], w+"/ ") && !strings.HasPrefix(lines[i], w+" ") {
			t.Errorf("call %d: %q, want from %s", i, lines[i], w)
		}
		if !strings.Contains(lines[i], " shell --hook-result="+filepath.Join(T, "state/fence/hook/")) {
			t.Errorf("call %d: %q", i, lines[i])
		}
	}
	if strace == "" {
		return
	}
	// No process between FORKS-START and FORKS-END: 40 prompts with a
	// changed $PWD and no project above it.
	tr, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	forks := countForks(string(tr))
	if forks != 0 {
		t.Logf("trace:\n%s", tr)
	}
	if forks != 0 {
		t.Errorf("%s hook started %d processes in 40 prompts without a project", sh, forks)
	}
}

// countForks counts the processes the shell started before it first ran the
// fake fence: installing the hook twice and the 40 prompts without a
// project all come before that.
func countForks(trace string) int {
	lines := strings.Split(trace, "\n")
	fakePid := ""
	end := len(lines)
	for i, l := range lines {
		if strings.Contains(l, "execve(") && strings.Contains(l, "fake fence") {
			fakePid, _, _ = strings.Cut(l, " ")
			end = i
			break
		}
	}
	// ret returns what the call on line i returned, following strace's
	// "<unfinished ...>" / "<... resumed>" split.
	ret := func(i int) string {
		l := strings.TrimSpace(lines[i])
		if strings.Contains(l, "<unfinished") {
			pid, _, _ := strings.Cut(l, " ")
			for _, m := range lines[i+1:] {
				if strings.HasPrefix(m, pid+" ") && strings.Contains(m, "resumed>") {
					l = strings.TrimSpace(m)
					break
				}
			}
		}
		_, r, _ := strings.Cut(l[strings.LastIndex(l, ")"):], "= ")
		return strings.TrimSpace(r)
	}
	n := 0
	for i, l := range lines[:end] {
		if !strings.Contains(l, "clone(") && !strings.Contains(l, "clone3(") && !strings.Contains(l, "fork(") {
			continue
		}
		if strings.Contains(l, "CLONE_THREAD") || (fakePid != "" && ret(i) == fakePid) {
			continue
		}
		n++
	}
	return n
}

// TestHookNounset: users with `set -u` (bash) or `setopt nounset` (zsh) in
// their rc must not get errors from the hook, whatever PROMPT_COMMAND is.
func TestHookNounset(t *testing.T) {
	dir := t.TempDir()
	for sh, script := range map[string]string{
		"bash": `set -u; unset PROMPT_COMMAND; source "$1"; source "$1"; _fence_hook; PROMPT_COMMAND=(x); source "$1"; _fence_hook; echo "ok ${PROMPT_COMMAND[*]}"`,
		"zsh":  `setopt nounset; source "$1"; source "$1"; _fence_hook; echo "ok $precmd_functions"`,
	} {
		bin := needTool(t, sh)
		s, _ := Hook(sh, HookOptions{Fence: "/nonexistent/fence"})
		f := filepath.Join(dir, sh)
		os.WriteFile(f, []byte(s), 0o644)
		out, err := exec.Command(bin, "-c", script, "x", f).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "ok _fence_hook") {
			t.Errorf("%s: %v: %q", sh, err, out)
		}
	}
}
