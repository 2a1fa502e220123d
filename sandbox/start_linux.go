package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is a running sandboxed command.
type Process struct {
	// TTY is the PTY master of an interactive session, nil otherwise.
	TTY *os.File

	init    initProcess
	conn    *initConn // the client's end of the socketpair
	spec    *Spec
	watcher *watcher

	mu        sync.Mutex
	status    int
	gotStatus bool
	alone     bool // the status came with nothing else left in the sandbox
	leftFor   string
	killedBy  int           // the signal that killed the command, 0 when it exited
	suspended chan struct{} // the init's answer to "suspend"
	stopped   chan struct{} // the command stopped
	offline   bool          // and no connection was ever made in it
	closers   []io.Closer

	done     chan struct{} // closed when Wait has collected the init
	loopDone chan struct{} // closed when readLoop has read the last message
	writable []string      // audited for new repositories at the end
	starts   []string      // their indexes are read for new gitlinks at the end
	knownGit map[[2]uint64]bool
	hidden   map[string]map[string]bool
	started  time.Time
	outbound drain     // allowLocalOutbound copies out of the sandbox
	timeline *timeline // -d only
	waitOnce sync.Once
	waitCode int
	waitErr  error
}

// Start starts the sandboxed process described by spec. ctx bounds the
// whole life of the process: when it is cancelled the sandbox is killed (as
// with exec.CommandContext). Errors are fence failures: the command has not
// run.
func Start(ctx context.Context, spec *Spec) (*Process, error) {
	pd, err := Prepare(spec)
	if err != nil {
		return nil, err
	}
	return pd.Start(ctx, spec)
}

// Pending is a sandbox init started ahead of its command: the namespaces
// exist and the init is booting while the caller resolves the policy. See
// [Prepare] and [Adopt].
type Pending struct {
	init initProcess
	sock int
	t0   int64
	tty  bool
	used bool
	// stdio, for an adopted init, are the command's descriptors 0-2, sent
	// with the configuration (a cloned init inherits them).
	stdio []*os.File
	// how says where the init came from, for -d.
	how string
	// adopted is set for an init the daemon booted (Adopt).
	adopted bool
	// umask is the process's, read by Prepare or Adopt (beside the
	// policy's loading, not on the way to the command); -1 when unknown.
	umask int
}

// Prepare starts a sandbox init before the policy is known, so that the
// init's start-up overlaps with the caller's own work (loading the config,
// registering with the daemon). It reads only spec's Stdin, Stdout, Stderr
// and TTY; [Pending.Start] takes the whole spec later. A Pending that is not
// started must be closed.
func Prepare(spec *Spec) (*Pending, error) {
	stdin, stdout, stderr := commandStdio(spec)
	t0 := monoNow()
	cmd, sock, err := startInit(stdin, stdout, stderr, false)
	if err != nil {
		return nil, err
	}
	return &Pending{init: childInit{cmd}, sock: sock, t0: t0, tty: spec.TTY, how: "cloned", umask: processUmask()}, nil
}

// commandStdio is what the init gets as its descriptors 0-2: the
// command's for a plain run (it passes them on untouched), stderr and any
// stdout to pass for a TTY session (nil: /dev/null).
func commandStdio(spec *Spec) (stdin, stdout, stderr *os.File) {
	stderr = fileOr(spec.Stderr, os.Stderr)
	if !spec.TTY {
		stdin, stdout = fileOr(spec.Stdin, os.Stdin), fileOr(spec.Stdout, os.Stdout)
	} else {
		stdout = spec.Stdout
	}
	return stdin, stdout, stderr
}

// CanPassStdout says whether a TTY session can give the command a stdout
// other than its PTY ([Spec.Stdout] with TTY).
const CanPassStdout = true

func fileOr(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

// startInit clones a sandbox init into new namespaces with the given
// descriptors 0-2 (nil: /dev/null) and returns it with the client's end of
// its socketpair. A warm init (booted ahead by the daemon) prepares what it
// can before its configuration arrives.
func startInit(stdin, stdout, stderr *os.File, warm bool) (*exec.Cmd, int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("socketpair: %w", err)
	}
	initEnd := os.NewFile(uintptr(fds[1]), "fence-init")
	defer initEnd.Close()

	uid, gid := os.Getuid(), os.Getgid()
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{"fence", InitArg},
		Env:        []string{},
		Dir:        "/",
		ExtraFiles: []*os.File{initEnd},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
				syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
			GidMappingsEnableSetgroups: false,
			// A non-root init keeps what it needs to build the sandbox
			// across its exec; it drops everything before the command runs.
			AmbientCaps: []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN, unix.CAP_SETPCAP, unix.CAP_NET_BIND_SERVICE},
			Setsid:      true,
			Pdeathsig:   syscall.SIGKILL,
		},
	}
	if warm {
		cmd.Env = []string{warmBootEnv + "=1"}
	}
	// Typed nils would reach os/exec as non-nil interfaces.
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	if err := cmd.Start(); err != nil {
		unix.Close(fds[0])
		return nil, -1, startError(err)
	}
	return cmd, fds[0], nil
}

// Close abandons a Pending that was not started.
func (pd *Pending) Close() {
	if pd.used {
		return
	}
	pd.used = true
	pd.init.signal(syscall.SIGKILL)
	pd.init.wait()
	unix.Close(pd.sock)
	pd.closeStdio()
}

func (pd *Pending) closeStdio() {
	for _, f := range pd.stdio {
		f.Close()
	}
	pd.stdio = nil
}

// PlanAhead builds the sandbox's mount plan before the sandbox starts, so
// that the caller can overlap it with other work (the daemon's round trip,
// getting the init): the spec must be complete except for Relay and
// SessionID. Start uses the plan. Calling it is optional.
func (spec *Spec) PlanAhead() error {
	if spec.ahead != nil {
		return errors.New("sandbox: Spec.PlanAhead called twice")
	}
	pl, err := buildPlanned(spec)
	if err != nil {
		return err
	}
	spec.ahead = pl
	return nil
}

func buildPlanned(spec *Spec) (*planned, error) {
	if len(spec.Args) == 0 {
		return nil, errors.New("no command to run")
	}
	if spec.Dir == "" {
		d, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
		spec.Dir = d
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the fence binary: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	t1 := monoNow()
	pl, err := buildPlan(spec, exe)
	if err != nil {
		return nil, err
	}
	return &planned{plan: pl, exe: exe, t1: t1, t2: monoNow()}, nil
}

// planned is a plan with what -d says about building it.
type planned struct {
	*plan
	exe    string
	t1, t2 int64 // monotonic start and end of buildPlan
}

// Start hands spec to the prepared init; see [Start]. spec's stdio and TTY
// must be what [Prepare] was given.
func (pd *Pending) Start(ctx context.Context, spec *Spec) (*Process, error) {
	p, err := pd.start(ctx, spec)
	if err != nil && pd.adopted && errors.Is(err, errInitLost) {
		// A warm init that died before it was ready (its daemon killed
		// before the handover was complete, say): nothing has run, so the
		// sandbox is built again with an init cloned here.
		cold, perr := Prepare(spec)
		if perr != nil {
			return nil, err
		}
		cold.how = "cloned (the warm init was lost before it was ready: " + sanitizeLine(err.Error()) + ")"
		return cold.start(ctx, spec)
	}
	return p, err
}

// Set only in test builds (testhooks_linux.go): beforeConfigSent runs
// when the plan is final and the init has not mounted it yet, beforeWatch
// when the init has it and the protected paths are not watched yet.
var beforeConfigSent, beforeWatch func()

// errInitLost is a sandbox init that went away before it was ready.
var errInitLost = errors.New("the sandbox init exited during setup")

func (pd *Pending) start(ctx context.Context, spec *Spec) (*Process, error) {
	if pd.used {
		return nil, errors.New("sandbox: Pending.Start called twice")
	}
	if spec.TTY != pd.tty {
		pd.Close()
		return nil, errors.New("sandbox: Pending.Start: TTY differs from Prepare")
	}
	pd.used = true
	pdStart := fileClockNow()
	fail := func(err error) (*Process, error) {
		pd.init.signal(syscall.SIGKILL)
		pd.init.wait()
		unix.Close(pd.sock)
		pd.closeStdio()
		return nil, err
	}
	pl, _ := spec.ahead.(*planned)
	if pl == nil {
		var err error
		if pl, err = buildPlanned(spec); err != nil {
			return fail(err)
		}
	}
	exe, t1, tPlanned := pl.exe, pl.t1, pl.t2
	cfg := &pl.cfg
	cfg.Args = spec.Args
	cfg.Dir = spec.Dir
	if r, err := filepath.EvalSymlinks(spec.Dir); err == nil {
		// Symlinks on the way may lead through the private /tmp; the
		// resolved directory is the one the plan makes visible.
		cfg.Dir = r
	}
	cfg.TTY = spec.TTY
	cfg.PassStderr = spec.TTY && spec.PassStderr
	cfg.PassStdout = spec.TTY && spec.Stdout != nil
	cfg.StopToLeave = spec.StopToLeave
	cfg.Rows, cfg.Cols = spec.Rows, spec.Cols
	cfg.Relay = spec.Relay
	if spec.Relay != "" {
		if r, err := filepath.EvalSymlinks(spec.Relay); err == nil {
			// A warm init opens it below the host's /tmp when it is
			// there (stagedRoot), which a symlink on the way could hide.
			cfg.Relay = r
		}
	}
	cfg.LocalOutbound = spec.Policy.LocalOutbound
	cfg.Publish = spec.Policy.Publish
	cfg.AllowDegraded = spec.Policy.AllowDegraded
	cfg.Env = SandboxEnv(spec.Env, EnvOptions{Pass: spec.Policy.EnvPass, TMPDIR: "/tmp", Session: spec.SessionID, Fence: exe})
	if cfg.Dir != spec.Dir {
		cfg.Env = setEnv(cfg.Env, "PWD", cfg.Dir)
	}
	cfg.T0 = pd.t0
	if spec.Debug != nil {
		cfg.Debug = true
		debugPlan(spec.Debug, pl.plan)
		fmt.Fprintf(spec.Debug, "fence: debug: client timing: init %s, plan +%.2fms\n", pd.how, float64(tPlanned-t1)/1e6)
	}
	conn, err := newInitConn(pd.sock) // closes pd.sock if it fails
	if err != nil {
		pd.init.signal(syscall.SIGKILL)
		pd.init.wait()
		pd.closeStdio()
		return nil, err
	}
	p := &Process{init: pd.init, conn: conn, spec: spec, done: make(chan struct{}), loopDone: make(chan struct{}), suspended: make(chan struct{}, 1), stopped: make(chan struct{}, 1),
		writable: append(slices.Clip(pl.cfg.Mounts.Writable), pl.cfg.Mounts.Session...), starts: pl.starts, knownGit: pl.knownGit, hidden: pl.hidden, started: pdStart}
	if spec.Debug != nil {
		p.timeline = &timeline{}
		p.timeline.add(stamp{"init-" + strings.Fields(pd.how)[0], pd.t0}, stamp{"plan", t1}, stamp{"plan-done", tPlanned})
	}
	cfg.Umask = pd.umask
	var stdio []int
	for _, f := range pd.stdio {
		stdio = append(stdio, int(f.Fd()))
	}
	if beforeConfigSent != nil {
		beforeConfigSent()
	}
	err = p.conn.send(&message{Kind: "config", Config: cfg}, stdio...)
	pd.closeStdio()
	p.timeline.mark("config-sent")
	if err != nil {
		p.abandon(false)
		return nil, fmt.Errorf("send the policy to the sandbox init: %w (%w)", err, errInitLost)
	}

	// Watch for protected paths being created. The init may already be
	// running the command: the watcher's first sweep catches what it made
	// before the watches were in place.
	if beforeWatch != nil {
		beforeWatch()
	}
	if len(pl.watches) > 0 {
		w, err := newWatcher(pl.watches, spec)
		if err != nil {
			p.abandon(false)
			return nil, err
		}
		p.watcher = w
	}

	ready := make(chan error, 1)
	go p.readLoop(ready)
	select {
	case err := <-ready:
		if err != nil {
			p.abandon(true)
			return nil, err
		}
	case <-ctx.Done():
		p.abandon(true)
		return nil, ctx.Err()
	}
	if err := p.publish(); err != nil {
		p.kill()
		p.Wait()
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			p.kill()
		case <-p.done:
		}
	}()
	return p, nil
}

// startError explains a failure to create the namespaces.
func startError(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EINVAL) {
		if Inside() {
			return &hintedError{err: fmt.Errorf("create the sandbox namespaces: %w", err),
				hint: "this is already inside a fence sandbox, which cannot start another one"}
		}
		return &hintedError{err: fmt.Errorf("create the sandbox namespaces: %w", err),
			hint: "unprivileged user namespaces seem to be disabled; run 'fence doctor' to see why and how to enable them"}
	}
	return fmt.Errorf("start the sandbox init: %w", err)
}

// readLoop handles the init's messages; the first "ready" or "error"
// answers ready.
func (p *Process) readLoop(ready chan<- error) {
	defer close(p.loopDone)
	answered := false
	answer := func(err error) {
		if !answered {
			answered = true
			ready <- err
		}
	}
	for {
		m, fds, err := p.conn.recv()
		if err != nil {
			answer(errInitLost)
			return
		}
		switch m.Kind {
		case "ready":
			p.timeline.add(m.Stamps...)
			p.timeline.mark("ready-received")
			if p.spec.Debug != nil {
				for _, l := range m.Debug {
					fmt.Fprintf(p.spec.Debug, "fence: debug: %s\n", sanitizeLine(l))
				}
			}
			for _, n := range m.Notices {
				p.notice(n)
			}
			if m.Sync {
				p.conn.send(&message{Kind: "go"})
			}
			answer(nil)
		case "error":
			answer(&hintedError{err: errors.New(m.Error), hint: m.Hint})
		case "tty":
			if len(fds) == 1 {
				p.TTY = os.NewFile(uintptr(fds[0]), "/dev/ptmx")
				fds = nil
			}
		case "exit":
			p.timeline.add(m.Stamps...)
			p.timeline.mark("exit-received")
			p.mu.Lock()
			p.status, p.gotStatus, p.alone, p.offline, p.leftFor, p.killedBy = m.Status, true, m.Alone, m.Offline, m.LeftFor, m.KilledBy
			p.mu.Unlock()
			if m.Alone {
				// The sandbox is over; the init's own exit may take a
				// while (its namespaces' teardown), nothing else comes.
				closeAll(fds)
				return
			}
		case "suspended":
			select {
			case p.suspended <- struct{}{}:
			default:
			}
		case "stopped":
			select {
			case p.stopped <- struct{}{}:
			default:
			}
		case "local":
			if len(fds) == 1 {
				p.outbound.add() // before the status that may follow
				go relayLocal(fds[0], m.Port, p.spec.Relay, &p.outbound)
				fds = nil
			}
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// relayLocal connects an accepted in-sandbox connection to the host's
// 127.0.0.1:port (allowLocalOutbound).
// out has counted the connection already (drain.add).
func relayLocal(fd int, port int, relay string, out *drain) {
	f := os.NewFile(uintptr(fd), "local")
	inner, err := net.FileConn(f)
	f.Close()
	if err != nil {
		out.done()
		return
	}
	outer, err := dialLocal(relay, port)
	if err != nil {
		inner.Close()
		out.done()
		return
	}
	pipeConns(inner, outer, out)
}

// dialLocal connects to the host's 127.0.0.1:port through the session's
// HTTP proxy (a CONNECT, in the session directory relay), which decides
// with the session's live policy: a port taken out of allowLocalOutbound
// by a config edit, or a deniedDomains entry for the host's loopback,
// holds for these connections as for the proxy's own. The init's
// listeners are fixed at start; dialed directly, they kept reaching the
// port after the edit, and past the deny (red team of the eleventh
// session). Without a session (no daemon), directly.
func dialLocal(relay string, port int) (net.Conn, error) {
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if relay == "" {
		return net.Dial("tcp", target)
	}
	c, err := net.Dial("unix", filepath.Join(relay, "http.sock"))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (net.Conn, error) {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"); err != nil {
		return fail(err)
	}
	// The answer is read a byte at a time: a server that speaks first
	// (MySQL, SSH) may send its greeting right behind it, and what a
	// buffered reader took of that would be lost to the copy.
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if len(head) > 8<<10 {
			return fail(errors.New("CONNECT answer too long"))
		}
		if _, err := io.ReadFull(c, one); err != nil {
			return fail(err)
		}
		head = append(head, one[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) && !bytes.HasPrefix(head, []byte("HTTP/1.0 200")) {
		line, _, _ := bytes.Cut(head, []byte("\r\n"))
		return fail(fmt.Errorf("CONNECT %s: %s", target, line))
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// publish listens on the host's 127.0.0.1 for every published port and
// hands each connection to the init.
func (p *Process) publish() error {
	for _, port := range p.spec.Policy.Publish {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("publish port %d on 127.0.0.1: %w", port, err)
		}
		p.mu.Lock()
		p.closers = append(p.closers, ln)
		p.mu.Unlock()
		go func(ln net.Listener, port int) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				f, err := c.(*net.TCPConn).File()
				c.Close()
				if err != nil {
					continue
				}
				p.conn.send(&message{Kind: "publish", Port: port}, int(f.Fd()))
				f.Close()
			}
		}(ln, port)
	}
	return nil
}

func (p *Process) notice(s string) {
	if w := p.spec.Notices; w != nil {
		fmt.Fprintf(w, "fence: %s\n", sanitizeLine(s))
	}
}

// abandon ends a sandbox that could not start: the init killed and waited
// for, the watcher stopped, the socket closed once the read loop (if it
// runs) has seen its end.
func (p *Process) abandon(loopStarted bool) {
	p.kill()
	p.init.wait()
	if loopStarted {
		<-p.loopDone
	}
	p.stopWatcher()
	p.conn.close()
}

func (p *Process) kill() {
	p.init.signal(syscall.SIGKILL)
}

// stopWatcher runs the final quarantine sweep and returns the protected
// paths it could not move away.
func (p *Process) stopWatcher() []string {
	if p.watcher != nil {
		return p.watcher.stop()
	}
	return nil
}

// Wait waits for the command and returns its exit status (DESIGN.md §2):
// its own status, 128+N when it died of signal N, 126/127 when it could not
// be executed or found. err is set only when the sandbox itself failed.
func (p *Process) Wait() (int, error) {
	p.waitOnce.Do(func() {
		// The init sends the command's status just before it exits, once
		// every other process in the sandbox is gone (Alone): from then on
		// the sandbox is over. Otherwise wait for the init itself, and
		// read its last message before deciding.
		gone := make(chan error, 1)
		go func() { gone <- p.init.wait() }()
		var err error
		select {
		case err = <-gone:
			select {
			case <-p.loopDone:
			case <-time.After(time.Second):
			}
		case <-p.loopDone:
			p.mu.Lock()
			alone := p.alone
			p.mu.Unlock()
			if !alone {
				err = <-gone
			}
		}
		// What the sandbox wrote to the host's local ports just before
		// it ended still goes out.
		p.outbound.wait(time.Second)
		p.timeline.mark("sandbox-over")
		close(p.done)
		p.mu.Lock()
		for _, c := range p.closers {
			c.Close()
		}
		status, got := p.status, p.gotStatus
		p.mu.Unlock()
		p.conn.close()
		failed := p.stopWatcher()
		p.timeline.mark("watcher-stopped")
		failed = append(failed, p.auditNewRepos()...)
		p.timeline.mark("repos-audited")
		p.auditGitState()
		if p.timeline != nil {
			p.timeline.mark("audited")
			fmt.Fprintf(p.spec.Debug, "fence: debug: sandbox %s\n", p.timeline)
		}
		switch {
		case got:
			p.waitCode = status
		default:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					p.waitCode = 128 + int(ws.Signal())
					break
				}
			}
			p.waitCode = 125
			p.waitErr = fmt.Errorf("the sandbox init failed (%v)", err)
		}
		if len(failed) > 0 && p.waitErr == nil {
			// Never end quietly with a protected path left behind.
			p.waitErr = &hintedError{
				err:  fmt.Errorf("protected paths created inside the sandbox could not be quarantined: %s", sanitizeLine(strings.Join(failed, ", "))),
				hint: "remove them, or inspect them before any tool uses them",
			}
		}
	})
	return p.waitCode, p.waitErr
}

// Offline reports, once Wait returned, that no connection was ever made
// in the sandbox's network namespace: nothing reached its network session,
// whose final counts then need not be asked for.
func (p *Process) Offline() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gotStatus && p.alone && p.offline
}

// Suspend stops every process in the sandbox (SIGSTOP) and returns once
// they are stopped: what a terminal's Ctrl-Z stops for a command started
// without fence. The command runs in a session of its own, so the
// terminal's SIGTSTP reaches only fence; stopping fence alone left the
// command running, and with the keyboard on its stdin, reading what the
// user typed next into their shell.
func (p *Process) Suspend() error {
	select {
	case <-p.suspended:
	default:
	}
	if err := p.conn.send(&message{Kind: "suspend"}); err != nil {
		return err
	}
	select {
	case <-p.suspended:
		return nil
	case <-p.loopDone:
		return errors.New("sandbox: the sandbox ended")
	case <-time.After(2 * time.Second):
		return errors.New("sandbox: the sandbox init did not stop the sandbox")
	}
}

// Resume continues the processes Suspend stopped.
func (p *Process) Resume() error { return p.conn.send(&message{Kind: "resume"}) }

// Stopped receives when the command stopped (Ctrl-Z in its PTY, or it
// stopped itself), except in a StopToLeave session, where that ends it.
func (p *Process) Stopped() <-chan struct{} { return p.stopped }

// Continue continues the command's process group after Stopped.
func (p *Process) Continue() error { return p.conn.send(&message{Kind: "continue"}) }

// CanStopToLeave says whether Spec.StopToLeave works on this system.
const CanStopToLeave = true

// LeftFor is, once Wait returned, the working directory of a command that
// stopped itself to leave the sandbox (Spec.StopToLeave), as the kernel
// had it, or "". It names a directory inside the sandbox, which is the
// same path outside except in what the sandbox has of its own (/tmp, /dev,
// /proc): the caller checks it.
func (p *Process) LeftFor() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leftFor
}

// KilledBy is, once Wait returned, the signal that killed the command, or
// 0 when it exited (with whatever status).
func (p *Process) KilledBy() syscall.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return syscall.Signal(p.killedBy)
}

// Signal sends sig to the command (through the init, which forwards it).
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return errors.New("sandbox: not a syscall.Signal")
	}
	return p.init.signal(s)
}

// fileClockNow is the time the exit audit compares file times with. The
// kernel stamps files from its coarse clock, up to a tick behind
// time.Now(): a file created just after a fine-grained start could look
// older than the session and escape the audit (seen once the start got
// fast enough: F-07 "in-subdir" attack tests, a few runs in ten).
func fileClockNow() time.Time {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &ts) == nil {
		return time.Unix(ts.Unix())
	}
	return time.Now().Add(-10 * time.Millisecond)
}
