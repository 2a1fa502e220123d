package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/sandbox"
	"github.com/fence-dev/fence/shellhook"
)

// runFlags are the flags of the running forms (DESIGN.md §2).
type runFlags struct {
	settings  string
	templates []string
	ports     []int
	monitor   bool
	debug     bool
	command   string // -c STRING
	hasC      bool
	args      []string // COMMAND [ARG...] after --
}

// parseRunFlags parses `[flags] -- COMMAND [ARG...]` and `[flags] -c
// STRING [ARG...]`. Flags come only before "--" or -c STRING: what follows
// belongs to the command and is never parsed (ATTACKS.md C-16).
func parseRunFlags(args []string) (*runFlags, error) {
	f := &runFlags{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			f.args = args[i+1:]
			if f.hasC {
				f.args = append([]string{"sh"}, f.args...)
			}
			break
		}
		if f.hasC {
			// fence -c STRING ARG0 ARG1...: positional parameters of sh.
			f.args = args[i:]
			break
		}
		name, value, hasValue := a, "", false
		if strings.HasPrefix(a, "--") {
			name, value, hasValue = strings.Cut(a, "=")
		} else if strings.HasPrefix(a, "-") && len(a) > 2 && strings.ContainsAny(a[1:2], "stpc") {
			name, value, hasValue = a[:2], a[2:], true
		}
		needValue := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", usagef("flag %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		switch name {
		case "-s", "--settings":
			v, err := needValue()
			if err != nil {
				return nil, err
			}
			if v == "" {
				return nil, emptySettings(name)
			}
			f.settings = v
		case "-t", "--template":
			v, err := needValue()
			if err != nil {
				return nil, err
			}
			f.templates = append(f.templates, v)
		case "-p", "--port":
			v, err := needValue()
			if err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return nil, usagef("flag %s: %q is not a port number (1-65535)", name, v)
			}
			f.ports = append(f.ports, n)
		case "-m", "--monitor":
			f.monitor = true
		case "-d", "--debug":
			f.debug = true
		case "-c":
			v, err := needValue()
			if err != nil {
				return nil, err
			}
			f.command, f.hasC = v, true
		default:
			if strings.HasPrefix(a, "-") {
				return nil, withHint(usagef("unknown flag %s", a), "run 'fence help' for the flags; the command goes after --")
			}
			return nil, withHint(usagef("%q: the command must follow --", a), "fence [flags] -- "+strings.Join(args[i:], " "))
		}
	}
	if f.hasC {
		if len(f.args) == 0 {
			f.args = []string{"sh"}
		}
		// "--": a STRING that starts with "-" is the command, not
		// options of sh (fence -c '-x' ran sh with xtrace on).
		f.args = append([]string{"/bin/sh", "-c", "--", f.command}, f.args...)
		return f, nil
	}
	if len(f.args) == 0 {
		return nil, withHint(usagef("no command to run"), "fence [flags] -- COMMAND [ARG...]  or  fence [flags] -c 'STRING'")
	}
	return f, nil
}

// runCommand runs the forms `fence [flags] -- CMD` and `fence [flags] -c STRING`.
// It returns the command's exit status, or an error when fence itself failed.
func runCommand(ctx context.Context, stdio Stdio, args []string) (int, error) {
	f, err := parseRunFlags(args)
	if err != nil {
		return 0, &exitError{code: ExitUsage, err: err}
	}
	if f.settings != "" {
		if _, err := os.Stat(f.settings); err != nil {
			return 0, withHint(fmt.Errorf("settings file: %w", err), "-s names the policy file to use; it must exist")
		}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return 0, fmt.Errorf("working directory: %w", err)
	}
	var copies []*pipeCopy
	stdin := stdio.In
	if stdin == nil {
		stdin = os.Stdin
	}
	outFile, _ := stdio.Out.(*os.File)
	errFile, _ := stdio.Err.(*os.File)
	piped := isPipe(outFile)
	// Saved before anything can run in the sandbox. Not with the output
	// piped: the other end (a pager) shares the terminal and sets its own
	// modes, and restored after the pager quit (q while the command still
	// runs), they left the terminal without echo (second red team round).
	restoreTerminal := func() {}
	if !piped {
		restoreTerminal = saveTerminal(stdin)
	}
	// A terminal is never handed to the command: escape sequences would
	// reach it unfiltered (OSC 52 clipboard, OSC 7, titles; ATTACKS.md
	// §T, red team B5), and ioctls would act on it. With the keyboard on
	// a terminal the command gets a PTY of its own, relayed through the
	// filter as in `fence shell`; its stdout and stderr are the PTY where
	// they are that terminal, and passed on untouched where they are not
	// (`fence -- cmd > log`). What goes to a terminal otherwise goes
	// through a pipe and the filter, and the rest (files, pipes: `fence
	// -- cat < big > out`) is passed on untouched.
	//
	// The keyboard goes through fence's relay, never to the command
	// directly: when fence is stopped (Ctrl-Z) or in the background,
	// nothing in the sandbox can read what is typed into the user's shell,
	// whatever it does to keep running. Handed the terminal itself, a
	// command stopped with the sandbox could continue itself (a timer
	// sending SIGCONT) and read it (red team of the eleventh session).
	//
	// In the background (`fence -- make &`) the relay could not put the
	// terminal in raw mode (SIGTTOU): the output filter alone then.
	//
	// Not with the output piped (`fence -- git log | less`): the other
	// end of the pipe shares the foreground and usually reads the
	// keyboard itself, and a relay in raw mode would take its keys. There
	// the command gets the terminal read-only (below), as before.
	useTTY := isTerminal(stdin) && foreground(stdin) && (isTerminal(outFile) || sandbox.CanPassStdout && !piped)
	// Where the relay shows the PTY's output (the echo of what is typed,
	// what the command writes to its terminal).
	screen := outFile
	if useTTY && !isTerminal(outFile) {
		if screen, err = terminalForScreen(stdin); err != nil {
			return 0, err
		}
		defer screen.Close()
	}
	// A terminal on stdin alone is the keyboard: the command gets it
	// read-only, or it could write to the terminal past the filter. Not
	// in the background (`fence -- make &`): there it gets /dev/null, as
	// background jobs do in shells without job control. The kernel stops
	// a background job that reads its controlling terminal (SIGTTIN), but
	// this terminal is not the command's controlling one, and it would
	// have read what the user typed into their shell.
	cmdStdin := stdin
	var keyboard *os.File
	if !useTTY && isTerminal(stdin) {
		var err error
		if foreground(stdin) {
			keyboard, err = reopenReadOnly(stdin)
			cmdStdin = keyboard
		} else {
			cmdStdin, err = os.Open(os.DevNull)
		}
		if err != nil {
			return 0, fmt.Errorf("pass the terminal on stdin to the command, read-only: %w", err)
		}
		defer cmdStdin.Close()
	}
	var blocked blockCounter
	var stdout, stderr *os.File
	if !useTTY || !isTerminal(outFile) {
		stdout, copies = terminalFileFor(stdio.Out, copies, &blocked)
	}
	if !useTTY || !isTerminal(errFile) {
		stderr, copies = terminalFileFor(stdio.Err, copies, &blocked)
	}
	defer func() {
		for _, c := range copies {
			<-c.done
		}
	}()
	closeCopies := func() {
		for _, c := range copies {
			c.w.Close()
		}
	}
	// Register the network session with a running daemon now, in the
	// background, and have a warm sandbox init come with it; or start an
	// init now, which is cloned, execs and boots while the policy is
	// loaded.
	netOpts := netOptions{Dir: cwd, Settings: f.settings, Templates: f.templates, Monitor: f.monitor}
	early := openNetSessionEarly(stdio, netOpts, true)
	type prepared struct {
		p   pendingSandbox
		err error
	}
	prepCh := make(chan prepared, 1)
	go func() {
		ps := &sandbox.Spec{Stdin: cmdStdin, Stdout: stdout, Stderr: stderr}
		if useTTY {
			ps = &sandbox.Spec{TTY: true, Stdout: stdout, Stderr: stderr}
			if stderr == nil {
				ps.Stderr = errFile
			}
		}
		p, err := prepareSandbox(ps, early)
		prepCh <- prepared{p, err}
	}()
	var pending pendingSandbox
	started := false
	defer func() {
		if !started {
			if pending == nil {
				if pr := <-prepCh; pr.err == nil {
					pr.p.Close()
				}
			} else {
				pending.Close()
			}
			closeCopies()
		}
	}()
	// The signals to forward to the command, registered while the policy
	// loads: enabling each one is a round trip to the runtime's signal
	// thread (≈ 20 µs each here). Until the command runs they queue.
	sigs := make(chan os.Signal, 8)
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		if useTTY {
			// The relay follows SIGWINCH and SIGHUP itself; keys like
			// Ctrl-C reach the PTY as bytes. A Ctrl-Z typed before the
			// relay put the terminal in raw mode comes as SIGTSTP, which
			// would stop fence alone: it goes to the command, and the
			// relay follows the command's stop.
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTSTP)
		} else {
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
				syscall.SIGTSTP, syscall.SIGCONT)
		}
	}()
	defer func() {
		<-notified
		// As many round trips again, off the way out: fence exits next.
		go signal.Stop(sigs)
	}()
	t0 := time.Now()
	// The sandbox lives until the command exits: the signals that cancel
	// ctx are forwarded to the command instead.
	runCtx := context.WithoutCancel(ctx)
	res, err := config.Load(config.Options{Dir: cwd, Settings: f.settings, Templates: f.templates, Publish: f.ports})
	if err != nil {
		early.abandon()
		return 0, err
	}
	tConfig := time.Now()
	reportConfig(stdio, res, f.debug)
	spec := sessionSpec(stdio, res, nil, f.ports, cwd, f.debug, f.monitor)
	spec.Args = f.args
	spec.Stdin, spec.Stdout, spec.Stderr = cmdStdin, stdout, stderr
	var tm *shellhook.Terminal
	if useTTY {
		tm = shellhook.NewTerminal(stdin, screen)
		if isTerminal(errFile) {
			// Not into a log file (2>log): CR LF for the raw terminal only.
			forRawTerminal(spec)
		}
		spec.Stdin = nil
		spec.TTY = true
		spec.Rows, spec.Cols = tm.Size()
		spec.PassStderr = stderr != nil
		if stderr == nil {
			spec.Stderr = errFile
		}
	}
	// The mount plan is built while the daemon registers the session and
	// the init gets ready.
	if err := spec.PlanAhead(); err != nil {
		early.abandon()
		return 0, sandboxStartError(err)
	}
	tPlan := time.Now()
	pr := <-prepCh
	pending = pr.p
	if pr.err != nil {
		started = true // nothing to close
		closeCopies()
		early.abandon()
		return 0, sandboxStartError(pr.err)
	}
	// Registering a session when no daemon ran yet waited for the config
	// on purpose: a broken config must not start a daemon.
	sess, err := early.wait()
	if errors.Is(err, errNoEarlyDaemon) {
		sess, err = openNetSession(runCtx, stdio, res, netOpts)
	}
	if err != nil {
		return 0, err
	}
	tSession := time.Now()
	var p *sandbox.Process
	if sess != nil {
		spec.Relay, spec.SessionID, spec.Discard = sess.Dir, sess.ID, sess.discard
		defer func() {
			t := time.Now()
			offline := p != nil && p.Offline()
			if offline {
				sess.CloseOffline(stdio)
			} else {
				sess.Close(stdio)
			}
			if f.debug {
				why := ""
				if offline {
					why = " (nothing connected in the sandbox: no final counts to wait for)"
				}
				fmt.Fprintf(stdio.Err, "fence: debug: timing: session close +%.2fms%s\n", ms(time.Since(t)), why)
			}
		}()
	}

	<-notified
	started = true
	p, err = pending.Start(runCtx, spec)
	closeCopies()
	if err != nil {
		return 0, sandboxStartError(err)
	}
	done := make(chan struct{})
	go func() {
		jobs := &jobControl{sandbox: p, keyboard: keyboard, errOut: stdio.Err}
		// A command that stopped itself stops fence too, as Ctrl-Z
		// would; with a PTY the relay follows that.
		stopped := p.Stopped()
		if useTTY {
			stopped = nil
		}
		for {
			select {
			case s := <-sigs:
				if !useTTY && jobs.handle(s) {
					continue
				}
				p.Signal(s)
			case <-stopped:
				jobs.handle(syscall.SIGTSTP)
			case <-done:
				return
			}
		}
	}()
	tStarted := time.Now()
	var status int
	if useTTY {
		if p.TTY == nil {
			_ = p.Signal(syscall.SIGKILL)
			_, _ = p.Wait()
			restoreTerminal()
			close(done)
			return 0, errors.New("BUG: sandbox started without the requested PTY")
		}
		var stats shellhook.RelayStats
		status, stats, err = tm.Relay(runCtx, shellhook.Child{Master: p.TTY, Wait: p.Wait, Signal: p.Signal,
			Stopped: p.Stopped(), Continue: p.Continue})
		for k, v := range stats.Blocked {
			blocked.add(k, v)
		}
	} else {
		status, err = p.Wait()
	}
	restoreTerminal()
	close(done)
	for _, c := range copies {
		<-c.done
	}
	if s := blocked.summary(); s != "" {
		fmt.Fprintf(stdio.Err, "fence: %s\n", s)
	}
	if f.debug {
		fmt.Fprintf(stdio.Err, "fence: debug: timing: since main %.2fms, config +%.2fms, plan +%.2fms, daemon session (registered with the config) +%.2fms, sandbox start +%.2fms, command +%.2fms\n",
			ms(t0.Sub(processStart)), ms(tConfig.Sub(t0)), ms(tPlan.Sub(tConfig)), ms(tSession.Sub(tPlan)), ms(tStarted.Sub(tSession)), ms(time.Since(tStarted)))
	}
	if err != nil {
		return 0, err
	}
	return status, nil
}

// processStart approximates when the process started (package init time).
var processStart = time.Now()

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pipeCopy copies a pipe to a writer that is not a file.
type pipeCopy struct {
	w    *os.File // the write end, closed once the sandbox holds it
	done chan struct{}
}

// fileFor returns w as an *os.File for the sandbox, through a pipe and a
// copying goroutine when w is not a file.
func fileFor(w io.Writer, copies []*pipeCopy) (*os.File, []*pipeCopy) {
	if f, ok := w.(*os.File); ok {
		return f, copies
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, copies
	}
	c := &pipeCopy{w: pw, done: make(chan struct{})}
	go func() {
		io.Copy(w, r)
		r.Close()
		close(c.done)
	}()
	return pw, append(copies, c)
}

// terminalForScreen opens the keyboard's terminal again for writing: where
// a TTY session whose stdout is not that terminal shows what its PTY
// writes (the echo of what is typed, what the command writes to its
// terminal).
func terminalForScreen(keyboard *os.File) (*os.File, error) {
	f, err := reopenTerminal(keyboard, unix.O_WRONLY)
	if err != nil {
		return nil, fmt.Errorf("open the terminal on stdin for the command's terminal output: %w", err)
	}
	return f, nil
}

// foreground reports whether this process is in the foreground process
// group of the terminal f.
func foreground(f *os.File) bool {
	pg, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}

// emptySettings is the error for -s or --settings (flag) given an empty
// file name: ignored, it would have run on the project's config instead.
func emptySettings(flag string) error { return usagef("flag %s: empty file name", flag) }

// isPipe reports whether f is a pipe or a socket.
func isPipe(f *os.File) bool {
	if f == nil {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return f != nil && term.IsTerminal(int(f.Fd())) }

// blockCounter counts the escape sequences the output filters dropped.
type blockCounter struct {
	mu sync.Mutex
	m  map[string]int
}

func (b *blockCounter) add(what string, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]int{}
	}
	b.m[what] += n
}

func (b *blockCounter) summary() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return blockedSummary(b.m)
}

// terminalFileFor is [fileFor], except that a terminal gets a pipe whose
// content goes through the escape-sequence filter (counted in blocked)
// and, at the end, the reset of modes the command left on.
func terminalFileFor(w io.Writer, copies []*pipeCopy, blocked *blockCounter) (*os.File, []*pipeCopy) {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) {
		return fileFor(w, copies)
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, copies
	}
	c := &pipeCopy{w: pw, done: make(chan struct{})}
	go func() {
		filt := shellhook.NewFilter(f)
		filt.OnBlock = func(what string) { blocked.add(what, 1) }
		io.Copy(filt, r)
		filt.Flush()
		if reset := filt.ResetModes(); len(reset) > 0 {
			f.Write(reset)
		}
		r.Close()
		close(c.done)
	}()
	return pw, append(copies, c)
}
