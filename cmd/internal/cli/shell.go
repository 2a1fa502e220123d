package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/sandbox"
	"github.com/fence-dev/fence/shellhook"
)

func init() {
	register(&command{
		name:    "shell",
		args:    "[flags] [DIR]",
		summary: "interactive sandboxed shell for DIR's project, in a fresh PTY",
		run:     runShell,
	})
}

// shellFlags are `fence shell`'s flags: the running forms' policy flags,
// --nested, and the hidden ones the hook passes.
type shellFlags struct {
	settings   string
	templates  shellStrings
	ports      intList
	monitor    bool
	debug      bool
	nested     bool
	hookResult string // file to write the directory the outer shell goes to
}

// shellStrings is a repeatable string flag.
type shellStrings []string

func (s *shellStrings) String() string     { return strings.Join(*s, ",") }
func (s *shellStrings) Set(v string) error { *s = append(*s, v); return nil }

// intList is a repeatable port flag.
type intList []int

func (l *intList) String() string { return fmt.Sprint(*l) }
func (l *intList) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port number (1-65535)", v)
	}
	*l = append(*l, n)
	return nil
}

func runShell(ctx context.Context, stdio Stdio, args []string) error {
	var f shellFlags
	fs := newFlagSet(stdio, lookup("shell"))
	for _, n := range []string{"s", "settings"} {
		fs.StringVar(&f.settings, n, "", "use `FILE` as the project layer (trusted because you named it)")
	}
	for _, n := range []string{"t", "template"} {
		fs.Var(&f.templates, n, "add a built-in template `NAME` (repeatable)")
	}
	for _, n := range []string{"p", "port"} {
		fs.Var(&f.ports, n, "publish sandbox port `N` on the host's 127.0.0.1 (repeatable)")
	}
	for _, n := range []string{"m", "monitor"} {
		fs.BoolVar(&f.monitor, n, false, "print this session's blocked events to stderr")
	}
	for _, n := range []string{"d", "debug"} {
		fs.BoolVar(&f.debug, n, false, "explain decisions: config chain, mounts, rules")
	}
	fs.BoolVar(&f.nested, "nested", false, "allow a session inside a fence session (it can only be narrower)")
	fs.Usage = func() {
		fmt.Fprint(stdio.Out, `usage: fence shell [flags] [DIR]

Start $SHELL sandboxed with the policy of DIR's project (default: the current
directory), in a fresh PTY. The shell hook runs this when you cd into a
project; cd out of the project ends it.

flags:
  -s, --settings FILE   use FILE as the project layer (trusted because you named it)
  -t, --template NAME   add a built-in template (repeatable)
  -p, --port N          publish sandbox port N on the host's 127.0.0.1 (repeatable)
  -m, --monitor         print this session's blocked events to stderr
  -d, --debug           explain decisions: config chain, mounts, rules
      --nested          allow a session inside a fence session (it can only be narrower)
`)
	}
	// --hook-result FILE is the hook's: where to write the directory the
	// outer shell changes to. It is not a user-facing flag.
	var rest []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--hook-result="); ok {
			f.hookResult = v
			continue
		}
		rest = append(rest, a)
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		return err
	}
	var empty error
	fs.Visit(func(fl *flag.Flag) {
		if (fl.Name == "s" || fl.Name == "settings") && fl.Value.String() == "" {
			empty = emptySettings(map[string]string{"s": "-s", "settings": "--settings"}[fl.Name])
		}
	})
	if empty != nil {
		return empty
	}
	if len(pos) > 1 {
		return usagef("shell: want at most one directory, got %q", pos)
	}
	if f.hookResult != "" && !filepath.IsAbs(f.hookResult) {
		return usagef("shell: --hook-result must be an absolute path")
	}
	if sandbox.Inside() && !f.nested {
		return withHint(errors.New("already inside a fence session"),
			"a nested session runs inside this one and can only be narrower; use 'fence shell --nested' if that is what you want")
	}
	// Whatever happens below, the hook reads this file to learn where to
	// go; it starts empty (stay here, do not re-enter).
	if f.hookResult != "" {
		if err := writeHookResult(f.hookResult, ""); err != nil {
			return err
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if len(pos) == 1 {
		if dir, err = filepath.Abs(pos[0]); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("shell: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("shell: %q is not a directory", dir)
	}
	out, ok := stdio.Out.(*os.File)
	if !ok || stdio.In == nil {
		return errors.New("shell: needs the process's own terminal")
	}
	tm := shellhook.NewTerminal(stdio.In, out)
	// The session lives until the shell exits; a signal that cancels ctx
	// hangs the shell up (the relay does that) instead of abandoning it.
	restarted := false
	for {
		started := time.Now()
		res, err := runShellOnce(ctx, stdio, tm, dir, &f)
		if err != nil {
			return err
		}
		switch {
		case res.ended != "" && (!restarted || time.Since(started) > restartGuard):
			// Something inside killed or stopped the shell: back in the
			// outer shell, the user would type the next command
			// unsandboxed in the project, without noticing. Everything
			// in the old sandbox is gone with it, so a new one is clean.
			fmt.Fprintf(stdio.Err, "fence: the sandboxed shell ended without you leaving (%s); starting a new one\n", res.ended)
			restarted = true
			continue
		case res.ended != "":
			fmt.Fprintf(stdio.Err, "fence: the sandboxed shell ended again without you leaving (%s); not starting another.\n"+
				"fence: you are now in your own, UNSANDBOXED shell in %s\n", res.ended, config.Printable(dir))
			return exitCode(125)
		case res.reload:
			fmt.Fprintln(stdio.Err, "fence: reloading the sandbox with the current policy")
			restarted = false
			continue
		case res.allow:
			restarted = false
			if err := allowFromShell(stdio, dir); err != nil {
				report(stdio, err, ExitFenceFailed)
			}
			continue
		case res.leaveTo != "":
			if f.hookResult != "" {
				return writeHookResult(f.hookResult, res.leaveTo)
			}
			fmt.Fprintf(stdio.Err, "fence: left the project for %s\n", res.leaveTo)
			return nil
		}
		return exitCode(res.code)
	}
}

// restartGuard is how long a restarted shell must have lived for another
// unexpected end to start yet another one (not for a shell that cannot
// start, or an rc file that crashes it).
const restartGuard = 5 * time.Second

// allowFromShell is `fence allow` for an inner shell's project, run by the
// client outside the sandbox after the inner shell exited with
// [shellhook.ExitAllow]. The user confirms on the real terminal, with typed-
// ahead input discarded first, so nothing inside the sandbox can approve its
// own config.
func allowFromShell(stdio Stdio, dir string) error {
	res, err := loadConfig(config.Options{Dir: dir, ReadOnly: true})
	if err != nil {
		return err
	}
	if res.ConfigFile == "" {
		return fmt.Errorf("no %s in %s or above", config.ProjectFile, config.Printable(dir))
	}
	if !printGrants(stdio.Err, res) {
		return nil
	}
	discardTypeahead(stdio.In)
	fmt.Fprint(stdio.Err, "trust it and restart the shell with it? [y/N] ")
	answer := readAnswer(stdio.In)
	fmt.Fprintln(stdio.Err)
	if a := strings.TrimSpace(strings.ToLower(answer)); a != "y" && a != "yes" {
		fmt.Fprintln(stdio.Err, "fence: not trusted; restarting the shell with the same policy")
		return nil
	}
	if err := config.Allow(res); err != nil {
		return err
	}
	fmt.Fprintf(stdio.Err, "fence: trusted %s; restarting the shell with its policy\n", config.Printable(res.Root))
	return nil
}

// readAnswer reads one line from the terminal, ending at CR or LF: the outer
// shell may have left the terminal without CR-to-LF translation (fish does,
// when the hook starts fence from its prompt event).
func readAnswer(in *os.File) string {
	var b []byte
	one := make([]byte, 1)
	for len(b) < 64 {
		if n, err := in.Read(one); n == 0 || err != nil {
			break
		}
		if one[0] == '\r' || one[0] == '\n' {
			break
		}
		b = append(b, one[0])
	}
	return string(b)
}

// shellResult is how one sandboxed shell ended.
type shellResult struct {
	code    int
	ended   string // why the shell ended when the user did not end it
	reload  bool   // `fence reload`: start again in place
	allow   bool   // `fence allow`: ask outside, then start again in place
	leaveTo string // the validated directory the shell handed back
}

// runShellOnce runs one sandboxed shell in dir and relays it to tm.
func runShellOnce(ctx context.Context, stdio Stdio, tm *shellhook.Terminal, dir string, f *shellFlags) (*shellResult, error) {
	if f.settings != "" {
		if _, err := os.Stat(f.settings); err != nil {
			return nil, withHint(fmt.Errorf("settings file: %w", err), "-s names the policy file to use; it must exist")
		}
	}
	// Start the sandbox init now: it boots while the policy is loaded and
	// the daemon registers the session.
	errFile, _ := stdio.Err.(*os.File)
	pending, err := prepareSandbox(&sandbox.Spec{TTY: true, Stderr: errFile}, nil)
	if err != nil {
		return nil, sandboxStartError(err)
	}
	started := false
	defer func() {
		if !started {
			pending.Close()
		}
	}()
	opts := config.Options{Dir: dir, Settings: f.settings, Templates: f.templates, Publish: f.ports}
	res, err := config.Load(opts)
	if err != nil {
		return nil, err
	}
	root := res.Root
	if root == "" {
		root = autoEnterRoot(res.Shell, dir)
	}
	if root == "" && f.hookResult != "" {
		// The hook's quick test matched an autoEnter pattern that the
		// precise one does not: nothing to enter.
		return &shellResult{}, nil
	}
	if root == "" {
		root = dir
	}
	reportConfig(stdio, res, f.debug)

	self, err := selfPath()
	if err != nil {
		return nil, err
	}
	shellPath := os.Getenv("SHELL")
	if !filepath.IsAbs(shellPath) {
		shellPath = "/bin/sh"
	}
	realRoot := root
	if r, err := filepath.EvalSymlinks(root); err == nil {
		realRoot = r
	}
	// Where it can, the inner shell leaves by stopping itself, and the
	// sandbox reads its directory from the kernel; otherwise it writes it
	// to a handoff file, which anything in the sandbox can write too.
	stopToLeave := sandbox.CanStopToLeave
	files, err := newShellFiles(shellDirOf(res), root, !stopToLeave)
	if err != nil {
		err = fmt.Errorf("shell: session files: %w", err)
		if pl, ok := errors.AsType[*plantedLinkError](err); ok {
			err = withHint(err, pl.hint())
		}
		return nil, err
	}
	defer files.remove()
	name := shellhook.ProjectName(root)
	prompt := "(fence:" + name + ")"
	marker := ""
	if res.Shell.PromptMarker {
		marker = prompt + " "
	}
	launch, err := shellhook.Prepare(shellhook.Session{
		Shell: shellPath, Fence: self,
		Root: realRoot, LogicalRoot: root,
		Marker: marker, Prompt: prompt,
		Dir: files.dir, Handoff: files.handoff, Notice: files.notice,
		HistoryDir:  files.history,
		UserZDOTDIR: userZDOTDIR(), XDGDataHome: os.Getenv("XDG_DATA_HOME"),
	})
	if err != nil {
		return nil, fmt.Errorf("shell: init files: %w", err)
	}

	sessCtx := context.WithoutCancel(ctx)
	sess, err := openNetSession(sessCtx, stdio, res, netOptions{Dir: dir, Settings: f.settings, Templates: f.templates, Monitor: f.monitor})
	if err != nil {
		return nil, err
	}
	if sess != nil {
		defer sess.Close(stdio)
	}
	rows, cols := tm.Size()
	spec := sessionSpec(stdio, res, sess, f.ports, dir, f.debug, f.monitor)
	forRawTerminal(spec)
	// The shell directory is read-only in every sandbox but for this
	// session's own history and handoff file.
	spec.Policy.ShellDir = shellDirOf(res)
	spec.Policy.ShellWrite = []string{files.history}
	if files.handoff != "" {
		spec.Policy.ShellWrite = append(spec.Policy.ShellWrite, files.handoff)
	}
	spec.StopToLeave = stopToLeave
	spec.Args = launch.Args
	spec.Env = append(append(spec.Env, launch.Env...), "FENCE_PROMPT="+prompt)
	spec.TTY, spec.Rows, spec.Cols = true, rows, cols
	started = true
	p, err := pending.Start(sessCtx, spec)
	if err != nil {
		return nil, sandboxStartError(err)
	}
	if p.TTY == nil {
		_ = p.Signal(syscall.SIGKILL)
		_, _ = p.Wait()
		return nil, errors.New("BUG: sandbox started without the requested PTY")
	}
	stopWatch := watchPolicy(res, opts, files.writeNotice)
	code, stats, err := tm.Relay(ctx, shellhook.Child{Master: p.TTY, Wait: p.Wait, Signal: p.Signal})
	stopWatch()
	if err != nil {
		return nil, fmt.Errorf("shell: %w", err)
	}
	if s := blockedSummary(stats.Blocked); s != "" {
		fmt.Fprintf(stdio.Err, "fence: %s\n", s)
	}
	if stopToLeave && code == 128+int(syscall.SIGSTOP) {
		// The shell stopped itself to leave (or something inside stopped
		// it, which ends the session all the same).
		left := p.LeftFor()
		if to, ok := acceptLeave(left, realRoot, root); ok {
			return &shellResult{leaveTo: to}, nil
		}
		if left == "" || within(left, realRoot) || within(left, root) {
			// The prompt hook stops the shell only once it is outside
			// the project: this was not the user leaving.
			return &shellResult{ended: "something in the sandbox stopped it"}, nil
		}
		fmt.Fprintf(stdio.Err, "fence: cannot take you to %s (not a plain, existing directory)\n", strconv.QuoteToGraphic(left))
		return &shellResult{}, nil
	}
	if sig := p.KilledBy(); sig != 0 && ctx.Err() == nil && !stats.HungUp && tm.IsTTY() {
		// Not the user's exit, and not fence hanging the shell up
		// because its terminal went away (bash dies of that SIGHUP: a
		// new shell on a terminal that is gone would live on).
		return &shellResult{ended: "killed by " + unix.SignalName(sig)}, nil
	}
	switch code {
	case shellhook.ExitReload:
		return &shellResult{reload: true}, nil
	case shellhook.ExitAllow:
		return &shellResult{allow: true}, nil
	case shellhook.ExitLeave:
		if files.handoff == "" {
			break
		}
		if to, ok := readHandoff(files.handoff, realRoot, root); ok {
			return &shellResult{leaveTo: to}, nil
		}
		return &shellResult{}, nil
	}
	return &shellResult{code: code}, nil
}

// autoEnterRoot returns the nearest ancestor of dir (dir included) that an
// autoEnter pattern matches, or "".
func autoEnterRoot(s config.ShellSettings, dir string) string {
	if len(s.AutoEnter) == 0 {
		return ""
	}
	for d := dir; ; d = filepath.Dir(d) {
		if s.AutoEnters(d) {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// blockedSummary says which terminal sequences the relay dropped.
func blockedSummary(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	names := make([]string, 0, len(m))
	total := 0
	for k, n := range m {
		names = append(names, k)
		total += n
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s (%d)", k, m[k]))
	}
	return fmt.Sprintf("blocked %d terminal escape sequence(s) from the sandbox: %s", total, strings.Join(parts, ", "))
}

// readHandoff returns the directory the inner shell wrote to the handoff
// file, if acceptLeave accepts it.
func readHandoff(file, root, logicalRoot string) (string, bool) {
	fh, err := os.Open(file)
	if err != nil {
		return "", false
	}
	defer fh.Close()
	line, err := bufio.NewReader(io.LimitReader(fh, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false
	}
	return acceptLeave(strings.TrimSuffix(line, "\n"), root, logicalRoot)
}

// acceptLeave returns the directory the inner shell left for, if it is
// acceptable: an absolute, clean path without control characters, naming an
// existing directory on the host, outside the project. Nothing else ever
// flows back out of the sandbox (ATTACKS.md H-04).
func acceptLeave(dir, root, logicalRoot string) (string, bool) {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return "", false
	}
	for _, c := range dir {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return "", false
		}
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return "", false
	}
	if within(dir, root) || within(dir, logicalRoot) {
		return "", false
	}
	return dir, true
}

func within(p, root string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}

// writeHookResult tells the hook where to go ("" for nowhere). The file is
// the one the hook named, in the user's own state directory.
func writeHookResult(path, dir string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("hook result %q: %w", path, err)
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("hook result %q: %w", path, err)
	}
	if dir != "" {
		_, err = fmt.Fprintln(fh, dir)
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// userZDOTDIR is the user's own ZDOTDIR: VS Code's zsh shell integration
// points ZDOTDIR at a temporary directory of its own and keeps the user's
// in USER_ZDOTDIR.
func userZDOTDIR() string {
	if os.Getenv("VSCODE_INJECTION") == "1" {
		if u := os.Getenv("USER_ZDOTDIR"); u != "" {
			return u
		}
	}
	return os.Getenv("ZDOTDIR")
}

// sandboxStartError is the error for a sandbox that could not start: fence
// failed (exit 125), with the engine's advice when it has some.
func sandboxStartError(err error) error {
	err = fmt.Errorf("cannot start the sandbox: %w", err)
	if h := sandbox.HintOf(err); h != "" {
		err = withHint(err, h)
	}
	return &exitError{code: ExitFenceFailed, err: err}
}
