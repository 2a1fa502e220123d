package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/proxy"
	"github.com/fence-dev/fence/proxy/control"
	"github.com/fence-dev/fence/proxy/daemon"
	"github.com/fence-dev/fence/sandbox"
)

// netSession is one run's registration with the proxy daemon.
type netSession struct {
	ID  string // the session id, exported as FENCE_SESSION
	Dir string // holds http.sock and socks.sock for the sandbox's relay

	rt      string
	monitor io.Writer // -m: this session's blocked events; nil without -m
	notices io.Writer // policy changes and config errors

	mu      sync.Mutex // guards conn, closed, counts
	conn    *control.Conn
	closed  bool
	blocked int
	hosts   map[string]int
	order   []string
	done    chan struct{}

	// -m output: a request retried in a loop prints once per
	// repeatWindow, then with how often it repeated.
	shown      map[string]time.Time
	suppressed map[string]int
}

const repeatWindow = 5 * time.Second

func (s *netSession) printBlocked(line string) {
	s.mu.Lock()
	if s.shown == nil {
		s.shown, s.suppressed = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if t, ok := s.shown[line]; ok && now.Sub(t) < repeatWindow {
		s.suppressed[line]++
		s.mu.Unlock()
		return
	}
	n := s.suppressed[line]
	delete(s.suppressed, line)
	if len(s.shown) > 1000 {
		clear(s.shown)
	}
	s.shown[line] = now
	s.mu.Unlock()
	if n > 0 {
		line += fmt.Sprintf(" (and %d more like it)", n)
	}
	fmt.Fprintf(s.monitor, "[fence:net] %s\n", line)
}

// netOptions carry the running-form flags the daemon needs to re-resolve the
// session's policy on a config change.
type netOptions struct {
	Dir       string
	Settings  string
	Templates []string
	Monitor   bool // print this session's blocked events to stderr
}

// daemonHint is what to do when the daemon cannot be reached.
const daemonHint = "run 'fence daemon run' in a terminal to see why it does not start; its log is in the runtime directory ('fence daemon status' shows where)"

// withDaemonHint adds daemonHint to err, unless the daemon answered it:
// then it runs, and the answer says what is wrong.
func withDaemonHint(err error) error {
	var answered *control.DaemonError
	if errors.As(err, &answered) {
		return err
	}
	return withHint(err, daemonHint)
}

// openNetSession registers a session for res with the proxy daemon, starting
// the daemon if needed. A nil session (no error) means no network relay:
// every connection from the sandbox fails closed.
func openNetSession(ctx context.Context, stdio Stdio, res *config.Resolved, opts netOptions) (*netSession, error) {
	spec, rt, err := sessionRequest(res, opts)
	if err != nil {
		return nil, err
	}
	c, resp, err := openLease(rt, control.Request{Op: control.OpOpen, Spec: spec}, true)
	if err != nil {
		return nil, withDaemonHint(fmt.Errorf("network session: %w", err))
	}
	return newNetSession(stdio, opts, rt, c, resp), nil
}

// sessionRequest is what the daemon needs to resolve the session's policy
// itself, and the runtime directory to reach it in.
func sessionRequest(res *config.Resolved, opts netOptions) (*control.Spec, string, error) {
	spec := control.Spec{Dir: opts.Dir, Settings: opts.Settings, Templates: opts.Templates, Env: map[string]string{}}
	for _, k := range control.EnvKeys {
		if v, ok := os.LookupEnv(k); ok {
			spec.Env[k] = v
		}
	}
	if spec.Dir == "" && res != nil {
		spec.Dir = res.Dir
	}
	for _, p := range []*string{&spec.Dir, &spec.Settings} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return nil, "", fmt.Errorf("network session: %w", err)
			}
			*p = abs
		}
	}
	rt, err := runtimeDir()
	return &spec, rt, err
}

func newNetSession(stdio Stdio, opts netOptions, rt string, c *control.Conn, resp *control.Response) *netSession {
	info := resp.Session
	s := &netSession{ID: info.ID, Dir: info.Dir, rt: rt, conn: c, notices: stdio.Err, hosts: map[string]int{}, done: make(chan struct{})}
	if opts.Monitor {
		s.monitor = stdio.Err
	}
	go s.follow()
	return s
}

// earlySession is a network session being opened while the caller loads
// the config, with a warm sandbox init in the same round trip.
type earlySession struct {
	done chan struct{}
	sess *netSession
	init warmInit
	err  error
	// sent is closed once the request went out or could not; askedInit,
	// set before, says whether it asked for a warm init.
	sent      chan struct{}
	askedInit bool
}

// warmInit is a sandbox init the daemon booted ahead: its socket and
// pidfd, or (sock < 0) why there is none; context is the init's process
// context, which the client compares with its own.
type warmInit struct {
	sock, pidfd int
	context     string
	reason      string
}

// openNetSessionEarly registers the session with an already running daemon:
// the daemon resolves the policy itself, from the same inputs (the
// directory, -s, -t and the environment), so this need not wait for the
// client's own config.Load. With wantInit it also asks for a warm sandbox
// init. All of it happens in the background, the dial and the request
// included: they took 0.28 ms of the main goroutine's CPU before the
// policy could load. (Sent from the main goroutine instead, the request
// was on its way sooner, which paid while the daemon's answer took longer
// than the policy and the plan; since the daemon makes a session's place
// ahead, it no longer does: `fence -- true` 8.96 -> 8.68 ms, bench-ab
// with pauses.) Without a running daemon it opens nothing (wait reports
// errNoEarlyDaemon): a daemon is started only once the config is known to
// be good.
func openNetSessionEarly(stdio Stdio, opts netOptions, wantInit bool) *earlySession {
	e := &earlySession{done: make(chan struct{}), sent: make(chan struct{}), init: warmInit{sock: -1, pidfd: -1}}
	go func() {
		defer close(e.done)
		spec, rt, err := sessionRequest(nil, opts)
		req := control.Request{Op: control.OpOpen, Spec: spec}
		if wantInit {
			// The client's context is compared by the client itself,
			// while the daemon answers (prepareSandbox).
			req.Exe, e.init.reason = warmInitAsk()
			req.Init = e.init.reason == ""
		}
		var c *control.Conn
		if err == nil {
			if c, err = control.Dial(rt); err == nil {
				err = c.Send(req) // a failed one is closed below
			}
		}
		e.askedInit = req.Init && err == nil
		close(e.sent)
		if errors.Is(err, control.ErrNoDaemon) {
			e.err, e.init.reason = errNoEarlyDaemon, "no daemon running yet"
			return
		}
		var resp *control.Response
		if err == nil {
			resp, err = c.Answer(req.Op)
			if err == nil && resp.Session == nil {
				err = errors.New("BUG: the daemon answered without a session")
			}
		}
		if err != nil {
			if c != nil {
				c.Close()
			}
			e.err = withDaemonHint(fmt.Errorf("network session: %w", err))
			return
		}
		if req.Init {
			w := &e.init
			w.sock, w.pidfd, w.reason, err = c.Init(resp)
			w.context = resp.InitContext
			if err != nil {
				w.reason = err.Error()
			}
		}
		e.sess = newNetSession(stdio, opts, rt, c, resp)
	}()
	return e
}

var errNoEarlyDaemon = errors.New("no daemon running yet")

// wait returns the session, or errNoEarlyDaemon.
func (e *earlySession) wait() (*netSession, error) {
	<-e.done
	return e.sess, e.err
}

// abandon ends the session, if it opened, without a summary.
func (e *earlySession) abandon() {
	go func() {
		if s, err := e.wait(); err == nil && s != nil {
			s.Close(Stdio{Err: io.Discard})
		}
	}()
}

// openLease connects to the daemon (starting it if needed) and sends req,
// an open or attach, whose connection stays open as the session's lease.
func openLease(rt string, req control.Request, startDaemon bool) (*control.Conn, *control.Response, error) {
	c, err := connectDaemon(rt, startDaemon)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Call(req)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if resp.Session == nil {
		c.Close()
		return nil, nil, errors.New("BUG: the daemon answered without a session")
	}
	return c, resp, nil
}

// follow reads the session's events until Close. If the daemon dies, it
// starts a new one and takes the session back (the new daemon restored it
// from its record), so the sandbox's network comes back by itself.
func (s *netSession) follow() {
	defer close(s.done)
	for {
		s.mu.Lock()
		c := s.conn
		s.mu.Unlock()
		for {
			e, err := c.Next()
			if err != nil {
				break
			}
			s.event(e)
		}
		// The stream ended: Close, or the daemon went away.
		var lost error
		for attempt := 0; ; attempt++ {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			time.Sleep(time.Duration(min(attempt, 10)) * 50 * time.Millisecond)
			nc, _, err := openLease(s.rt, control.Request{Op: control.OpAttach, ID: s.ID}, true)
			if err == nil {
				s.mu.Lock()
				if s.closed {
					s.mu.Unlock()
					nc.Close()
					return
				}
				s.conn = nc
				s.mu.Unlock()
				break
			}
			lost = err
			if attempt == 20 || (!errors.Is(err, control.ErrNoDaemon) && attempt > 2) {
				fmt.Fprintf(s.notices, "fence: network session lost (%v); connections from the sandbox now fail\n", lost)
				return
			}
		}
	}
}

func (s *netSession) event(e proxy.Event) {
	switch e.Kind {
	case proxy.KindBlocked:
		s.mu.Lock()
		// Once closed, the daemon's exact counts follow: only print the
		// events still queued before them.
		if !s.closed {
			s.blocked++
			h := e.Host
			if h == "" {
				h = e.Target
			}
			if _, ok := s.hosts[h]; !ok {
				s.order = append(s.order, h)
			}
			s.hosts[h]++
		}
		s.mu.Unlock()
		if s.monitor != nil {
			s.printBlocked(e.Line())
		}
	case proxy.KindPolicy, proxy.KindPending, proxy.KindConfigError:
		fmt.Fprintf(s.notices, "[fence:net] %s\n", e.Line())
	}
}

// discard hands f to the daemon to close (see control.Conn.Discard).
func (s *netSession) discard(f *os.File) {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	c.Discard(f)
}

// Close ends the session and prints the one-line summary of what was blocked.
func (s *netSession) Close(stdio Stdio) { s.end(stdio, true) }

// CloseOffline ends a session that nothing in the sandbox could reach (no
// connection was made there: [sandbox.Process.Offline]) without waiting
// for the daemon's final counts, which can only be what was streamed.
func (s *netSession) CloseOffline(stdio Stdio) { s.end(stdio, false) }

func (s *netSession) end(stdio Stdio, final bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	c := s.conn
	s.mu.Unlock()
	var info *control.SessionInfo
	if final {
		// Half-closing the lease ends the session; the daemon answers
		// with its exact counts (the events streamed to us may have been
		// thinned out under a flood) and closes the connection, which
		// ends follow.
		c.CloseWrite()
		select {
		case <-s.done:
			info = c.Final()
		case <-time.After(2 * time.Second):
		}
	}
	if info != nil && info.Blocked >= s.blocked {
		s.mu.Lock()
		s.blocked = info.Blocked
		for h, n := range info.Hosts {
			if _, ok := s.hosts[h]; !ok {
				s.order = append(s.order, h)
			}
			s.hosts[h] = n
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.conn.Close()
	s.mu.Unlock()
	if line := s.summary(); line != "" {
		fmt.Fprintln(stdio.Err, line)
	}
}

// summary is "fence: blocked 3 connections to 2 hosts: evil.example (2),
// x.example", hosts by count then first seen; "" when nothing was blocked.
func (s *netSession) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked == 0 {
		return ""
	}
	hosts := append([]string(nil), s.order...)
	sort.SliceStable(hosts, func(i, j int) bool { return s.hosts[hosts[i]] > s.hosts[hosts[j]] })
	const show = 5
	var parts []string
	for i, h := range hosts {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(hosts)-show))
			break
		}
		p := proxy.Escape(h)
		if n := s.hosts[h]; n > 1 {
			p += " (" + strconv.Itoa(n) + ")"
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("fence: blocked %s to %s: %s", plural(s.blocked, "connection"), plural(len(hosts), "host"), strings.Join(parts, ", "))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// runtimeDir returns the daemon's runtime directory, created private.
func runtimeDir() (string, error) {
	rt := config.RuntimeDir()
	if err := daemon.EnsureDir(rt); err != nil {
		return "", withHint(err, "the runtime directory must be yours and private (mode 0700); remove it or set XDG_RUNTIME_DIR")
	}
	return rt, nil
}

// connectDaemon connects to the daemon of rt, starting it (detached) when
// none answers and start is set.
func connectDaemon(rt string, start bool) (*control.Conn, error) {
	c, err := control.Dial(rt)
	if err == nil || !start {
		return c, err
	}
	if sandbox.Inside() {
		// Inside a sandbox the daemon's directory is masked and its control
		// socket refuses us: a daemon started here would only be a
		// confusing copy. Nested sessions get no network of their own.
		return nil, errors.New("cannot reach the fence daemon from inside a sandbox")
	}
	exited, err := spawnDaemon(rt)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err = control.Dial(rt)
		if err == nil {
			return c, nil
		}
		select {
		case code := <-exited:
			// Exit status 1 is "already running": another client won the
			// race, and its daemon will answer soon.
			if code != 1 {
				return nil, fmt.Errorf("the fence daemon exited at start (status %d): %s", code, lastLogLine(rt))
			}
			exited = nil
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the fence daemon did not start: %w (see %s)", err, filepath.Join(rt, daemon.LogName))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastLogLine returns the daemon log's last line, escaped.
func lastLogLine(rt string) string {
	b, err := os.ReadFile(filepath.Join(rt, daemon.LogName))
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return proxy.Escape(lines[len(lines)-1])
}

// spawnDaemon starts `fence daemon run` in its own session, with its
// output in the runtime directory's log. The channel receives its exit
// status if it exits while we run (status 1: it lost the race for the lock
// to another daemon).
func spawnDaemon(rt string) (<-chan int, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	logPath := filepath.Join(rt, daemon.LogName)
	if fi, err := os.Lstat(logPath); err == nil && fi.Size() > 1<<20 {
		os.Rename(logPath, logPath+".1")
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	defer devnull.Close()
	cmd := exec.Command(exe, "daemon", "run")
	// argv[0] "fence": the test binary that stands in for fence picks its
	// command by name.
	cmd.Args[0] = "fence"
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the daemon: %w", err)
	}
	// Reap it if it exits while we run (it lost the lock race, failed, or
	// went idle); otherwise it outlives us and init reaps it.
	exited := make(chan int, 1)
	go func() {
		cmd.Wait()
		exited <- cmd.ProcessState.ExitCode()
	}()
	return exited, nil
}

// daemonStatus describes the daemon and the live sessions of root (all
// sessions when root is empty) for `fence status`: human lines and a value
// for --json.
func daemonStatus(ctx context.Context, root string) (lines []string, jsonValue any) {
	type out struct {
		Running  bool                  `json:"running"`
		PID      int                   `json:"pid,omitempty"`
		Dir      string                `json:"runtimeDir"`
		Sessions []control.SessionInfo `json:"sessions"`
		WarmInit string                `json:"warmInit,omitempty"`
		Error    string                `json:"error,omitempty"`
	}
	rt := config.RuntimeDir()
	resp, err := control.Do(rt, control.Request{Op: control.OpStatus, Root: root})
	if err != nil {
		o := out{Dir: rt, Sessions: []control.SessionInfo{}}
		if !errors.Is(err, control.ErrNoDaemon) {
			o.Error = err.Error()
			return []string{"daemon: not reachable: " + err.Error()}, o
		}
		return []string{"daemon: not running (starts on demand)"}, o
	}
	st := resp.Status
	lines = append(lines, fmt.Sprintf("daemon: running, pid %d, since %s, runtime dir %s (log: %s)", st.PID, st.Started.Format(time.RFC3339), st.Dir, daemon.LogName))
	what := "sessions"
	if root != "" {
		what = "sessions of this project"
	}
	if st.WarmInit != "" {
		lines = append(lines, "warm sandbox init: "+st.WarmInit)
	}
	lines = append(lines, fmt.Sprintf("%s: %d", what, len(st.Sessions)))
	for _, s := range st.Sessions {
		lines = append(lines, "  "+sessionLine(s))
	}
	return lines, out{Running: true, PID: st.PID, Dir: st.Dir, Sessions: st.Sessions, WarmInit: st.WarmInit}
}

func sessionLine(s control.SessionInfo) string {
	line := fmt.Sprintf("%s  %s  since %s, %d open, %d blocked", s.ID, config.DisplayPath(s.Root), s.Started.Format("15:04:05"), s.Active, s.Blocked)
	if len(s.Hosts) > 0 {
		hosts := make([]string, 0, len(s.Hosts))
		for h := range s.Hosts {
			hosts = append(hosts, h)
		}
		sort.Slice(hosts, func(i, j int) bool {
			if s.Hosts[hosts[i]] != s.Hosts[hosts[j]] {
				return s.Hosts[hosts[i]] > s.Hosts[hosts[j]]
			}
			return hosts[i] < hosts[j]
		})
		if len(hosts) > 5 {
			hosts = hosts[:5]
		}
		for i, h := range hosts {
			hosts[i] = fmt.Sprintf("%s (%d)", proxy.Escape(h), s.Hosts[h])
		}
		line += ": " + strings.Join(hosts, ", ")
	}
	if s.Errors > 0 {
		line += fmt.Sprintf(", %d config errors", s.Errors)
	}
	return line
}
