package sandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initFD is the init's end of the socketpair (ExtraFiles[0]).
const initFD = 3

// initError is a setup failure reported to the client.
type initError struct {
	err  error
	hint string
}

func (e *initError) Error() string { return e.err.Error() }

func failf(hint, format string, args ...any) error {
	return &initError{err: fmt.Errorf(format, args...), hint: hint}
}

// RunInit is the sandbox init: pid 1 of the new namespaces. It reads its
// configuration from the client, builds the filesystem view, starts the
// relays, locks itself down (no_new_privs, no capabilities, Landlock,
// seccomp, non-dumpable), runs the command, forwards signals, reaps, and
// exits with the command's status. It returns the exit status.
func RunInit() int {
	initStamps = append(initStamps, stamp{"init-main", monoNow()})
	// Nothing in this process may be inspected or attached to by the
	// command (ATTACKS.md ).
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// Only fds 0-2 may reach the command, whatever leaked into fence
	// (ATTACKS.md X-08).
	unix.CloseRange(initFD+1, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	unix.CloseOnExec(initFD)
	runtime.LockOSThread() // mount and pivot_root act on this thread's fs state

	var early bootState
	if os.Getenv(warmBootEnv) == "1" {
		// Booted ahead by the daemon: do now what does not depend on the
		// policy, off the client's path.
		early.boot()
	}
	m, fds, err := recvMsg(initFD)
	if err == nil && m.Kind == "stage" {
		// The daemon found this init's mounts to be the host's: build
		// what of the new root does not depend on the policy.
		closeAll(fds)
		early.stage()
		m, fds, err = recvMsg(initFD)
	}
	if err == nil && m.Kind == "adopt" {
		// Booted ahead by the daemon and now handed to a client: from here
		// on this sandbox follows the client (its socket), and must outlive
		// a daemon that exits or restarts.
		unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0)
		initStamps = nil // booted long ago: only what follows counts
		closeAll(fds)
		m, fds, err = recvMsg(initFD)
	}
	if err != nil || m.Kind != "config" || m.Config == nil {
		closeAll(fds)
		fmt.Fprintf(os.Stderr, "fence: sandbox init: no configuration from the client: %v\n", err)
		return 125
	}
	cfg := m.Config
	if err := takeStdio(fds); err != nil {
		sendMsg(initFD, &message{Kind: "error", Error: err.Error()})
		return 125
	}
	if cfg.Umask >= 0 {
		unix.Umask(cfg.Umask)
	}
	initStamps = append(initStamps, stamp{"init-config", monoNow()})
	st, err := setup(cfg, early)
	if err != nil {
		msg := &message{Kind: "error", Error: err.Error()}
		var ie *initError
		if errors.As(err, &ie) {
			msg.Hint = ie.hint
		}
		sendMsg(initFD, msg)
		return 125
	}
	return st.run()
}

// initOutbound tracks the init's relayed copies out of the sandbox (the
// proxy relays, published ports): see drain.
var initOutbound drain

// statusSent is set once the client has the command's status (sentCode)
// with nothing else left in the sandbox.
var (
	statusSent atomic.Bool
	sentCode   int
)

// teardownPause is how long the init waits, once its client let go of it,
// before it exits (the namespaces' teardown).
const teardownPause = 3 * time.Millisecond

// warmBootEnv marks an init booted ahead by the daemon (WarmPool).
const warmBootEnv = "FENCE_INIT_WARM"

// bootState is the policy-independent part of the init's setup, done
// while a warm init waits for its client, by a cloned one in setup.
type bootState struct {
	done    bool
	err     error // checkAllThreads
	priv    error // dropExecPrivileges
	seccomp error // installSeccompBase
	lo      error // loopbackUp
	sigs    chan os.Signal
	proxies map[string]net.Listener // listenProxies
	root    *stagedRoot             // a warm init's, once its mounts were checked
	rootErr error
}

func (b *bootState) boot() {
	b.done = true
	b.err = checkAllThreads()
	b.priv = dropExecPrivileges()
	if b.priv == nil {
		// On this thread (the main one, locked): the init's other
		// threads run nothing but its own code until the lockdown
		// synchronizes them all.
		b.seccomp = installSeccompBase()
	}
	b.lo = loopbackUp()
	if b.lo == nil {
		b.proxies = listenProxies()
	}
	b.sigs = notifySignals()
	warmExec()
}

// warmExec runs the command-starting code once, on a path that cannot be
// executed ("/" is a directory): a process's first fork and exec pays for
// the code and data it touches for the first time, and for Go's pidfd
// probe (0.07 ms of the command's start, measured), which a warm init pays
// here, off the client's path.
func warmExec() {
	cmd := &exec.Cmd{Path: "/", Args: []string{"fence-warm-exec"}, SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if cmd.Start() == nil {
		// Not reached: exec of a directory fails. Never leave it running.
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// stage builds the policy-independent part of the new root (stagedRoot).
// Only after the daemon compared the init's mount table with the host's:
// the init's own mounts would make them differ.
func (b *bootState) stage() {
	r, err := stageRoot()
	if err == nil {
		err = r.fill(-1)
	}
	b.root, b.rootErr = r, err
}

// takeStdio makes the descriptors that came with the configuration (an
// adopted init's: the command's stdio) the init's 0, 1 and 2. A cloned
// init inherited them and gets none.
func takeStdio(fds []int) error {
	if len(fds) == 0 {
		return nil
	}
	defer closeAll(fds)
	if len(fds) != 3 {
		return fmt.Errorf("sandbox init: %d descriptors with the configuration, want 3", len(fds))
	}
	for i, fd := range fds {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return fmt.Errorf("sandbox init: take descriptor %d: %w", i, err)
		}
	}
	return nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// initStamps times the init's phases for -d.
var initStamps []stamp

// initState is what setup leaves for the running phase.
type initState struct {
	cfg *initConfig
	// seccompBase is why the base filter could not be installed at boot.
	seccompBase error
	tty         *os.File // PTY slave for a TTY session
	sigs        chan os.Signal
	// onMain takes functions to run on the main thread, the one that
	// forked the command (killOthers says why).
	onMain chan func()
	pid    atomic.Int32 // the command's, once it started
	// suspended is set while the client has the sandbox stopped
	// ("suspend"): the command's stop is then no news for it.
	suspended atomic.Bool
	debug     []string
	notices   []string
}

func (st *initState) debugf(format string, args ...any) {
	st.debug = append(st.debug, fmt.Sprintf(format, args...))
}

func setup(cfg *initConfig, early bootState) (*initState, error) {
	if len(cfg.Args) == 0 {
		// The client never sends one; a configuration that decodes is
		// still not trusted to be whole.
		return nil, failf("", "sandbox init: the configuration names no command")
	}
	if !early.done {
		early.boot()
	}
	st := &initState{cfg: cfg, sigs: early.sigs, seccompBase: early.seccomp, onMain: make(chan func())}
	if err := early.err; err != nil {
		return nil, failf("build fence with CGO_ENABLED=0 (the release builds are)", "%v", err)
	}
	if err := early.priv; err != nil {
		return nil, failf("", "drop privileges: %w", err)
	}
	var relayDir int = -1
	if cfg.Relay != "" {
		fd, err := early.root.openHost(cfg.Relay, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err != nil {
			return nil, failf("", "open the relay directory %q: %w", cfg.Relay, err)
		}
		relayDir = fd
	}
	if early.rootErr != nil {
		return nil, early.rootErr
	}
	if err := buildRoot(st, &cfg.Mounts, early.root); err != nil {
		return nil, err
	}
	initStamps = append(initStamps, stamp{"mounts", monoNow()})
	if cfg.TTY {
		if err := st.openPTY(); err != nil {
			return nil, err
		}
	}
	if err := early.lo; err != nil {
		return nil, failf("", "bring up the loopback interface: %w", err)
	}
	if err := startRelays(st, relayDir, early.proxies); err != nil {
		return nil, err
	}
	if err := st.lockdown(); err != nil {
		return nil, err
	}
	initStamps = append(initStamps, stamp{"lockdown", monoNow()})
	return st, nil
}

// lockdown restricts the init before it forks the command, which inherits
// everything. Landlock and seccomp cover every thread at once (one
// stop-the-world round each). The capability drops would take one round
// per syscall (41 bounding-set drops), so they are done on the main thread,
// from which the command is forked (what only matters at exec already at
// boot: dropExecPrivileges, which also sets no_new_privs on every thread);
// the other threads lose their capabilities as the command starts (run).
func (st *initState) lockdown() error {
	cfg := st.cfg
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return failf("", "setrlimit(RLIMIT_CORE): %w", err)
	}
	if err := dropThreadPrivileges(); err != nil {
		return failf("", "drop privileges: %w", err)
	}
	rfd, res, err := applyLandlock(cfg.Landlock)
	switch {
	case err != nil && st.degraded("landlock"):
		st.notices = append(st.notices, fmt.Sprintf("running without Landlock (%v), as allowDegraded says", err))
	case err != nil:
		hint := `Landlock needs Linux 5.13+ with "landlock" in the lsm= boot parameter (see 'fence doctor')`
		if errors.Is(err, unix.E2BIG) {
			hint = landlockStackFull
		}
		return failf(hint+`; or accept the weaker mode with [sandbox] allowDegraded = ["landlock"] in your user config`,
			"install Landlock: %w", err)
	default:
		unix.Close(rfd)
		st.debugf("landlock: ABI %d, writable %v, bind restricted %v (allowed ports %v)", res.ABI, cfg.Landlock.Writable, cfg.Landlock.RestrictBind, cfg.Landlock.BindPorts)
		for _, d := range res.Downgrade {
			st.debugf("%s", d)
		}
	}
	err = st.seccompBase
	if err == nil {
		err = installSeccompLate(seccompOptions{DenyMPTCP: cfg.DenyMPTCP})
	}
	if err != nil {
		if !st.degraded("seccomp") {
			hint := "seccomp needs a kernel with CONFIG_SECCOMP_FILTER (see 'fence doctor')"
			if errors.Is(err, unix.ENOMEM) {
				hint = seccompBudgetUsed
			}
			return failf(hint+`; or accept the weaker mode with [sandbox] allowDegraded = ["seccomp"] in your user config`,
				"install the seccomp filter: %w", err)
		}
		what := "without seccomp"
		if st.seccompBase == nil {
			// The base part went on at boot: most of the filter holds.
			what = "without the seccomp filter's mount and MPTCP part"
		}
		st.notices = append(st.notices, fmt.Sprintf("running %s (%v), as allowDegraded says", what, err))
	} else {
		st.debugf("seccomp: arch check, %d denied syscalls, clone/unshare namespace flags, clone3 ENOSYS, socket families unix/inet/inet6/netlink-route, ioctl TIOCSTI/TIOCLINUX/TIOCSETD/TIOCCONS/TIOCEXCL/TCXONC", len(deniedSyscalls))
	}
	if err := verifyNoCaps(); err != nil {
		return failf("", "%w", err)
	}
	return nil
}

func (st *initState) degraded(name string) bool {
	for _, d := range st.cfg.AllowDegraded {
		if d == name {
			return true
		}
	}
	return false
}

// openPTY opens a PTY in the sandbox's own devpts and sends the master to
// the client.
func (st *initState) openPTY() error {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return failf("", "open /dev/ptmx: %w", err)
	}
	defer master.Close()
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return failf("", "unlock the pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		return failf("", "get the pty number: %w", err)
	}
	if st.cfg.Rows > 0 && st.cfg.Cols > 0 {
		unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: st.cfg.Rows, Col: st.cfg.Cols})
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return failf("", "open the pty: %w", err)
	}
	st.tty = slave
	if err := sendMsg(initFD, &message{Kind: "tty"}, fd); err != nil {
		return failf("", "pass the pty to the client: %w", err)
	}
	return nil
}

// run starts the command and supervises it until it exits.
func (st *initState) run() int {
	cfg := st.cfg
	sigs := st.sigs

	// With something to print first, wait until the client has printed
	// it, so that it comes before the command's own output.
	sync := cfg.Debug || len(st.notices) > 0
	ready := &message{Kind: "ready", Debug: st.debug, Notices: st.notices, Sync: sync}
	if cfg.Debug {
		ready.Stamps = append(initStamps, stamp{"init-ready", monoNow()})
	}
	if err := sendMsg(initFD, ready); err != nil {
		return 125
	}
	if sync {
		if m, _, err := recvMsg(initFD); err != nil || m.Kind != "go" {
			return 125
		}
	}
	status, pid := st.startCommand()
	var stamps []stamp
	if cfg.Debug {
		stamps = append(stamps, stamp{"command-started", monoNow()})
	}
	if pid == 0 {
		sendMsg(initFD, &message{Kind: "exit", Status: status, Alone: reapAll(killOthers)})
		return status
	}
	// The other threads lose their capabilities while the command starts
	// on the other core, and before anything in the init waits on the
	// command or the client: Go 1.26 was seen to hang for good (about
	// once in a thousand runs) when a stop-the-world round met a
	// goroutine coming back from a blocking syscall, such as a wait4 the
	// command's exit ends. Nothing is in one now: SIGCHLD is not
	// followed, and the goroutines that wait start after.
	if err := dropProcessPrivileges(); err != nil {
		fmt.Fprintf(os.Stderr, "fence: sandbox init: drop the other threads' privileges: %v\n", err)
		sendMsg(initFD, &message{Kind: "exit", Status: 125, Alone: reapAll(killOthers)})
		os.Exit(125)
	}
	st.pid.Store(int32(pid))
	go st.clientLoop()
	go st.reap(pid, stamps)

	// Every signal to the command's processes, and every look at them
	// through /proc, goes from this thread, the one that forked the
	// command (killOthers says why).
	for {
		select {
		case sig := <-sigs:
			forwardSignal(pid, sig.(syscall.Signal))
		case f := <-st.onMain:
			f()
		}
	}
}

// crashSignals are those Go's runtime dies of, with a dump of registers
// and goroutines on stderr, when kill sends them. The kernel delivers to a
// pid namespace's init, from inside, only the signals it handles, and the
// runtime handles these: `kill -ABRT 1` in the sandbox ended it (ATTACKS.md
// Caught, they come from kill only (a real fault still panics the
// runtime, or would loop: not in this init, which neither traps nor
// aborts), and are dropped.
var crashSignals = []os.Signal{syscall.SIGABRT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS,
	syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSTKFLT, syscall.SIGSYS}

// forwardSignal passes a signal the init got on to the command.
func forwardSignal(pid int, s syscall.Signal) {
	if slices.Contains(crashSignals, os.Signal(s)) {
		return // sent by something in the sandbox
	}
	switch s {
	case syscall.SIGURG, syscall.SIGPIPE, syscall.SIGTTOU, syscall.SIGTTIN:
		// Go's runtime preemption and terminal noise: not for the command.
	case syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTSTP:
		// What a terminal would do: the whole foreground job.
		if unix.Kill(-pid, s) != nil {
			unix.Kill(pid, s)
		}
	default:
		unix.Kill(pid, s)
	}
}

// reap collects every process that ends in the sandbox, the command's
// orphans included, until the command itself ends (or, with StopToLeave,
// stops); then it ends the rest,
// reports the command's status to the client and exits the init. It waits
// in wait4 instead of following SIGCHLD through os/signal: a child's exit
// reaches it with nothing in between, no signal delivery and no other
// goroutine to wake.
func (st *initState) reap(pid int, stamps []stamp) {
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, unix.WUNTRACED, nil)
		if err == unix.EINTR || (err == nil && wpid != pid) {
			continue
		}
		code := 125
		leftFor, killedBy := "", 0
		switch {
		case err != nil:
			// ECHILD: the command is gone and was never collected.
			fmt.Fprintf(os.Stderr, "fence: sandbox init: wait for the command: %v\n", err)
		case ws.Stopped() && !st.cfg.StopToLeave:
			// Ctrl-Z in the command's PTY, or the command stopped
			// itself: the client stops too (giving the terminal back),
			// and later asks to continue. Not when the client stopped
			// the sandbox itself: it would take that for a new stop.
			if !st.suspended.Load() {
				sendMsg(initFD, &message{Kind: "stopped"})
			}
			continue
		case ws.Stopped():
			// A fenced shell asks to leave for its working directory.
			// The kernel says which: a file or a message could have been
			// written by anything in the sandbox (ATTACKS.md H-04).
			// Whoever stopped it, the sandbox ends here.
			leftFor = st.workingDir(pid)
			code = 128 + int(ws.StopSignal())
		case ws.Signaled():
			code = 128 + int(ws.Signal())
			killedBy = int(ws.Signal())
		default:
			code = ws.ExitStatus()
		}
		alone := reapAll(st.killFromMainThread)
		// What the command's processes wrote to relayed connections just
		// before they died still goes out.
		offline := quiesceRelays(time.Second)
		initOutbound.wait(time.Second)
		if st.cfg.Debug {
			stamps = append(stamps, stamp{"command-exited", monoNow()})
		}
		if alone {
			// Nothing is left in the sandbox: the init's own exit (its
			// threads, memory and namespaces) waits for the client to let
			// go of it (clientLoop), set up before the client can. Its
			// stderr, the last of the command's stdio it held, goes now:
			// a pipe reading fence's output (out=$(fence -- cmd)) ends
			// with the client.
			if devnull, err := unix.Open("/dev/null", unix.O_RDWR, 0); err == nil {
				unix.Dup3(devnull, 2, 0)
				unix.Close(devnull)
			}
			sentCode = code
			statusSent.Store(true)
		}
		sendMsg(initFD, &message{Kind: "exit", Status: code, Alone: alone, Offline: offline, LeftFor: leftFor, KilledBy: killedBy, Stamps: stamps})
		if alone {
			select {}
		}
		os.Exit(code)
	}
}

// notifySignals subscribes to the signals the client forwards,
// and a few more worth passing on when the init itself is signalled; not
// every signal: enabling each one is a round trip to the runtime's signal
// thread, which is locked to its OS thread like the init's main goroutine
// (≈ 20 µs each here: all 65 took ≈ 1.2 ms before every command). An
// unlisted signal sent to the init from outside is dropped, as for any pid
// namespace's init without a handler.
func notifySignals() chan os.Signal {
	sigs := make(chan os.Signal, 32)
	// SIGPIPE is caught, not ignored: a write to a closed stderr then
	// fails with EPIPE instead of killing the init, and the command still
	// starts with the default action. An ignored signal stays ignored
	// across exec: the command inherited SIGPIPE, SIGTTIN and SIGTTOU
	// ignored, so `yes | head -1` printed "Broken pipe" and background jobs
	// of a fenced shell got EIO instead of stopping. SIGTTIN and SIGTTOU
	// never reach the init, which never reads or writes its controlling
	// terminal (a TTY session's PTY).
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGALRM,
		syscall.SIGPIPE)
	signal.Notify(sigs, crashSignals...)
	return sigs
}

// reapAll ends every other process in the sandbox and collects them all,
// as the kernel would once this init exits: after it, nothing in the
// sandbox can change a file any more, and the client may audit and return
// without waiting for the init's own exit (the namespaces' teardown). Every
// process left is the init's child or becomes one when its parent dies, so
// ECHILD means none is left; kill is called again until then, for
// anything forked meanwhile. It reports whether it got there.
func reapAll(kill func()) bool {
	for {
		kill()
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		switch err {
		case nil, unix.EINTR:
		case unix.ECHILD:
			return true
		default:
			return false
		}
	}
}

// killOthers sends SIGKILL to every process in the sandbox but the init.
// Only the main thread can: Landlock gives each thread of the init a
// domain of its own (landlock_restrict_self acts on the calling thread,
// and the init calls it on every thread), and with signal scoping a
// domain may signal only itself and its descendants. The command was
// forked from the main thread, so its processes are in that thread's
// domain; from any other thread kill(-1) fails for each of them with
// EPERM, which kill(-1) does not even report, and they would run on,
// holding the session open, until they ended by themselves.
func killOthers() { unix.Kill(-1, unix.SIGKILL) }

// onMainThread runs f on the main thread (see killOthers), and returns
// when it did.
func (st *initState) onMainThread(f func()) {
	done := make(chan struct{})
	st.onMain <- func() { f(); close(done) }
	<-done
}

// killFromMainThread is killOthers, run where it works.
func (st *initState) killFromMainThread() { st.onMainThread(killOthers) }

// workingDir reads the command's working directory from the kernel. From
// another thread than the main one, Landlock's ptrace scoping (the same
// domains as killOthers) denies the look.
func (st *initState) workingDir(pid int) string {
	var dir string
	st.onMainThread(func() { dir, _ = os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd") })
	return dir
}

// startCommand starts the command; when it cannot be started it returns
// the status (126/127) and pid 0.
func (st *initState) startCommand() (int, int) {
	cfg := st.cfg
	if fi, err := os.Stat(cfg.Dir); err != nil || !fi.IsDir() {
		fmt.Fprintf(os.Stderr, "fence: working directory %q is not visible in the sandbox\n", cfg.Dir)
		return 125, 0
	}
	path, status, err := lookPath(cfg.Args[0], cfg.Dir, cfg.Env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fence: %s: %v\n", cfg.Args[0], err)
		return status, 0
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        cfg.Args,
		Env:         cfg.Env,
		Dir:         cfg.Dir,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if st.tty != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = st.tty, st.tty, st.tty
		if cfg.PassStderr {
			cmd.Stderr = os.Stderr
		}
		if cfg.PassStdout {
			cmd.Stdout = os.Stdout
		}
		// The PTY is the init's controlling terminal, and the command's
		// process group its foreground one, in the init's session. As a
		// session leader of its own, with its parent in another session,
		// the command was an orphaned process group, for which the kernel
		// drops the terminal's SIGTSTP: Ctrl-Z did nothing.
		if err := unix.IoctlSetInt(int(st.tty.Fd()), unix.TIOCSCTTY, 0); err != nil {
			fmt.Fprintf(os.Stderr, "fence: sandbox init: make the pty the controlling terminal: %v\n", err)
			return 125, 0
		}
		// With Foreground, Ctty is the descriptor in this process.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: int(st.tty.Fd())}
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		code := 126
		var pe *os.PathError
		if errors.As(err, &pe) && errors.Is(pe.Err, syscall.ENOENT) {
			code = 127
			if _, serr := os.Stat(path); serr == nil {
				// The file exists: its interpreter does not.
				fmt.Fprintf(os.Stderr, "fence: %s: %v (bad interpreter?)\n", cfg.Args[0], pe.Err)
				return 126, 0
			}
		}
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		msg := err.Error()
		if pe != nil {
			msg = pe.Err.Error()
		}
		if strings.Contains(msg, "no such file or directory") && cfg.Dir != "" {
			if _, serr := os.Stat(cfg.Dir); serr != nil {
				msg = fmt.Sprintf("working directory %q is not visible in the sandbox", cfg.Dir)
				code = 125
			}
		}
		fmt.Fprintf(os.Stderr, "fence: %s: %s\n", cfg.Args[0], msg)
		return code, 0
	}
	if st.tty != nil {
		st.tty.Close()
	}
	// Drop our copies of the command's stdio so that pipes close when the
	// command's side does.
	if st.tty == nil {
		for _, fd := range []int{0, 1} {
			devnull, err := unix.Open("/dev/null", unix.O_RDWR, 0)
			if err == nil {
				unix.Dup3(devnull, fd, 0)
				unix.Close(devnull)
			}
		}
	}
	return 0, cmd.Process.Pid
}

// lookPath finds the command in the sandbox's PATH, and returns the exit
// status to use when it cannot be run (127 not found, 126 not executable).
func lookPath(name, dir string, env []string) (string, int, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		fi, err := os.Stat(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", 127, errors.New("no such file or directory")
			}
			return "", 126, err
		}
		if fi.IsDir() {
			return "", 126, errors.New("is a directory")
		}
		return name, 0, nil
	}
	pathEnv, _ := lookupEnv(env, "PATH")
	if pathEnv == "" {
		pathEnv = "/usr/local/bin:/usr/bin:/bin"
	}
	found := ""
	for _, d := range filepath.SplitList(pathEnv) {
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if fi.Mode()&0o111 != 0 && unix.Access(p, unix.X_OK) == nil {
			return p, 0, nil
		}
		if found == "" {
			found = p
		}
	}
	if found != "" {
		return "", 126, errors.New("permission denied")
	}
	return "", 127, errors.New("command not found")
}

// clientLoop serves the client's messages: published connections, and
// the client going away (then everything ends).
func (st *initState) clientLoop() {
	for {
		m, fds, err := recvMsg(initFD)
		if err != nil {
			if err == errPeerGone {
				if statusSent.Load() {
					// The client has the status and let go: the
					// teardown waits a moment more, past the client's
					// own exit and the wake-up of what waited for it,
					// which it slowed on two cores (bench-ab with
					// pauses: 0.3 ms).
					time.Sleep(teardownPause)
					os.Exit(sentCode)
				}
				// The client is gone: nobody can collect the status.
				// The init's exit makes the kernel kill everything in
				// its pid namespace (from this thread, kill(-1) could
				// not: killOthers).
				os.Exit(125)
			}
			continue
		}
		switch m.Kind {
		case "publish":
			if len(fds) == 1 {
				go relayPublished(fds[0], m.Port)
				fds = nil
			}
		case "suspend":
			// Every process in the sandbox stops, not only the command:
			// anything it left in the background could go on reading
			// the terminal (Process.Suspend).
			st.suspended.Store(true)
			st.onMainThread(func() { unix.Kill(-1, unix.SIGSTOP) })
			sendMsg(initFD, &message{Kind: "suspended"})
		case "resume":
			st.onMainThread(func() { unix.Kill(-1, unix.SIGCONT) })
			st.suspended.Store(false)
		case "continue":
			// After "stopped": the command's process group, which the
			// PTY's Ctrl-Z stopped.
			if pid := st.pid.Load(); pid > 0 {
				st.onMainThread(func() { unix.Kill(-int(pid), unix.SIGCONT) })
			}
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// relayPublished connects a host connection to the sandbox's
// 127.0.0.1:port.
func relayPublished(fd, port int) {
	initOutbound.add()
	f := os.NewFile(uintptr(fd), "publish")
	outer, err := net.FileConn(f)
	f.Close()
	if err != nil {
		initOutbound.done()
		return
	}
	inner, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		outer.Close()
		initOutbound.done()
		return
	}
	pipeConns(inner, outer, &initOutbound)
}
