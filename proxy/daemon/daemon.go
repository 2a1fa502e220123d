// Package daemon is the per-user proxy daemon: it owns the runtime
// directory, serves the control socket (only to peers outside every
// sandbox), runs each session's proxies on the session's own unix sockets,
// reloads session policies when their config files change, and reports
// events. Sessions are recorded in the runtime directory so that a new
// daemon, after a crash, serves the same session sockets again.
package daemon

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/proxy"
	"github.com/fence-dev/fence/proxy/control"
	"github.com/fence-dev/fence/sandbox"
)

// Resolution is a session's resolved network policy, as the CLI's
// resolver computes it from a [control.Spec].
type Resolution struct {
	Root  string
	Rules proxy.Rules
	// Watch are files and directories whose changes may change the policy
	// (the config chain, the trust store). The daemon watches their
	// directories (editors replace files by renaming).
	Watch []string
	// Keep asks, on a reload, to keep the rules in force: the config was
	// edited to loosen and waits for `fence allow`. Notice says so.
	Keep   bool
	Notice string
}

// Options configure [Run].
type Options struct {
	// Dir is the runtime directory (created 0700 if missing; its parent
	// must exist).
	Dir string
	// Resolve computes a session's policy; it is called when a new
	// session's first request needs it or once the session has run for
	// ResolveDelay, and whenever one of its watched files changes. It runs
	// in the daemon; a panic in it is turned into an error.
	Resolve func(control.Spec) (Resolution, error)
	// ResolveDelay is how long a new session's policy waits to be loaded
	// unless a request needs it first; 0 means 20ms. Most `fence --`
	// sessions end within milliseconds and never need it; loading it (a
	// millisecond of CPU) while their sandbox starts took that time from
	// the sandbox on a machine with few cores.
	ResolveDelay time.Duration
	// Idle is how long the daemon lives with no sessions and no monitors;
	// 0 means 5 minutes.
	Idle time.Duration
	// Housekeeping is how often detached sessions and idleness are
	// checked; 0 means a quarter of Idle, at most a second.
	Housekeeping time.Duration
	// Debounce is how long a burst of file changes is collected before a
	// reload; 0 means 15ms.
	Debounce time.Duration
	// Resolver resolves allowed names for the proxies; nil means the
	// system resolver.
	Resolver proxy.Resolver
	// Log receives the daemon's diagnostics; nil discards them.
	Log *log.Logger
	// Ready, if set, is called once the control socket accepts connections.
	Ready func()
	// MaxConns bounds each session's concurrent connections; 0 means 4096.
	// Either is lowered to what the daemon's open-file limit allows
	// (descriptorBudget).
	MaxConns int
	// Inits, if set, keeps sandbox inits booted ahead for clients
	// ([control.OpInit]); the daemon closes it when it exits.
	Inits InitPool
}

// InitPool hands out sandbox inits booted ahead (sandbox.WarmPool): the
// client's end of an init's socket and a pidfd of it, which the daemon
// passes on and closes, or why there is none.
type InitPool interface {
	// An empty context leaves the comparison to the client: the init's
	// context comes back with it; a non-empty exe (the client's binary,
	// sandbox.ExeIdentity) must still be the init's. clientPID is the
	// client's process (its cgroup decides whether it can use the init).
	Take(context, exe string, clientPID int) (sock, pidfd int, initContext, reason string)
	// Refill boots the next init, in the background, unless one is ready
	// or on its way: after a pause of after, or as soon as a client asks
	// for one.
	Refill(after time.Duration)
	// State says whether one is ready, for status.
	State() string
	Close()
}

// ErrRunning is returned by [Run] when another daemon holds the lock.
var ErrRunning = errors.New("a fence daemon is already running")

// File and directory names in the runtime directory.
const (
	lockName    = "daemon.lock"
	sessionsDir = "s"
	recordsDir  = "records"
	LogName     = "daemon.log" // the detached daemon's stdout and stderr
)

type daemon struct {
	opts    Options
	self    map[string]nsID // selfNamespaces, read at start
	started time.Time
	watcher *fsnotify.Watcher
	wake    chan struct{}
	// budget is the descriptors the sessions' connections share, maxConns
	// one session's part (descriptorBudget).
	budget   *proxy.Budget
	maxConns int

	mu        sync.Mutex // guards everything below
	sessions  map[string]*session
	monitors  map[*stream]struct{}
	watched   map[string]map[*session]struct{} // directory -> sessions watching it
	idleSince time.Time
	stopping  bool
	// When the last session's client exited, and whether the client that
	// last asked for a warm init came within burstGap of it (then the work
	// after a session is not paused: see lease).
	lastExit time.Time
	burst    bool
	// spare is the next session's place, made ahead (makeSpare).
	spare *sessionPlace
	// making counts the makeSpare calls under way (added to under mu,
	// while not stopping): the exit waits for them, or a place made as
	// the daemon stops could outlive it.
	making sync.WaitGroup
}

type session struct {
	id      string
	spec    control.Spec
	root    string
	dir     string
	started time.Time
	client  peer
	px      *proxy.Session
	// reloadMu serializes reloads: a slow older reload must not apply its
	// result after a newer one (a tightening would be undone).
	reloadMu sync.Mutex
	saveMu   sync.Mutex // serializes writes of the record
	dirs     []string   // watched directories
	paths    []string   // the files and directories the policy depends on

	// guarded by daemon.mu
	lease      *stream
	detachedAt time.Time
	blocked    int
	hosts      map[string]int
	errors     int
	lastNotice string
	timer      *time.Timer
	record     *time.Timer // writes the first record (recordDelay)
	resolve    *time.Timer // loads the policy (resolveDelay)
	closed     bool

	resolveOnce sync.Once // resolveFirst
}

// record is what survives a daemon restart, in records/ID.json: the
// inputs of the policy, the last good rules, and who owns the session.
type record struct {
	ID          string       `json:"id"`
	Spec        control.Spec `json:"spec"`
	Root        string       `json:"root"`
	Started     time.Time    `json:"started"`
	ClientPID   int          `json:"clientPid"`
	ClientStart uint64       `json:"clientStart"`
	Rules       proxy.Rules  `json:"rules"`
	Watch       []string     `json:"watch"`
}

// stream is a connection that receives events: a session's lease or a
// monitor.
type stream struct {
	c    net.Conn
	ch   chan proxy.Event
	root string // monitor filter
	done chan struct{}
	once sync.Once
	// final takes the last message of a lease: the writer sends the
	// events still queued, then it, then stops.
	final chan func() control.Message
}

func newStream(c net.Conn) *stream {
	s := &stream{c: c, ch: make(chan proxy.Event, 256), done: make(chan struct{}), final: make(chan func() control.Message)}
	go func() {
		enc := json.NewEncoder(c)
		write := func(m control.Message) bool {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if enc.Encode(m) != nil {
				s.close()
				return false
			}
			return true
		}
		for {
			select {
			case e := <-s.ch:
				if !write(control.Message{Event: e}) {
					return
				}
			case f := <-s.final:
				drained := false
				for !drained {
					select {
					case e := <-s.ch:
						if !write(control.Message{Event: e}) {
							return
						}
					default:
						drained = true
					}
				}
				write(f())
				s.close()
				return
			case <-s.done:
				return
			}
		}
	}()
	return s
}

// finish sends the events still queued, then the message f returns
// (computed after them), and closes the stream; it returns once that is
// written, or the stream is closed.
func (s *stream) finish(f func() control.Message) {
	select {
	case s.final <- f:
	case <-s.done:
	}
	<-s.done
}

// send queues e; a reader too slow to keep up loses events rather than
// slowing the proxies.
func (s *stream) send(e proxy.Event) {
	select {
	case s.ch <- e:
	default:
	}
}

func (s *stream) close() {
	s.once.Do(func() {
		close(s.done)
		s.c.Close()
	})
}

// Run runs the daemon until ctx is done, a stop request arrives, or it has
// been idle for opts.Idle. It returns [ErrRunning] if another daemon holds
// the runtime directory's lock.
func Run(ctx context.Context, opts Options) error {
	if opts.Idle == 0 {
		opts.Idle = 5 * time.Minute
	}
	if opts.ResolveDelay == 0 {
		opts.ResolveDelay = 20 * time.Millisecond
	}
	if opts.Debounce == 0 {
		opts.Debounce = 15 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = log.New(io.Discard, "", 0)
	}
	if opts.Resolve == nil {
		return errors.New("daemon: no policy resolver")
	}
	if err := EnsureDir(opts.Dir); err != nil {
		return err
	}
	for _, sub := range []string{sessionsDir, recordsDir} {
		if err := EnsureDir(filepath.Join(opts.Dir, sub)); err != nil {
			return err
		}
	}
	lock, err := os.OpenFile(filepath.Join(opts.Dir, lockName), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("daemon lock: %w", err)
	}
	defer lock.Close()
	if err := takeLock(lock, filepath.Join(opts.Dir, control.SocketName)); err != nil {
		return err
	}
	lock.Truncate(0)
	fmt.Fprintf(lock, "%d\n", os.Getpid())

	self, err := selfNamespaces()
	if err != nil {
		return err
	}
	// Without a watcher, tightening edits would not apply: fail closed.
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("daemon: cannot watch config files: %w", err)
	}
	defer w.Close()

	// Holding the lock, any socket left is stale.
	sock := filepath.Join(opts.Dir, control.SocketName)
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	os.Chmod(sock, 0o600)
	defer func() {
		ln.Close()
		os.Remove(sock)
	}()

	d := &daemon{
		opts: opts, self: self, started: time.Now(), watcher: w, wake: make(chan struct{}, 1),
		sessions: map[string]*session{}, monitors: map[*stream]struct{}{},
		watched: map[string]map[*session]struct{}{}, idleSince: time.Now(),
	}
	limit := openFileLimit()
	budget, perSession := descriptorBudget(limit, opts.MaxConns)
	d.budget, d.maxConns = proxy.NewBudget(budget), perSession
	d.restore()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.watch(ctx)
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go d.housekeeping(ctx, cancel)
	if opts.Inits != nil {
		opts.Inits.Refill(0) // for the first client after this one
	}
	go d.makeSpare()
	if opts.Ready != nil {
		opts.Ready()
	}
	opts.Log.Printf("daemon %d serving %s (open files: %d; %d for connections, %d connections per session)", os.Getpid(), opts.Dir, limit, budget, perSession)
	// Out of descriptors for a moment (a session's flood, the system's
	// limit), accept fails until some close: the daemon goes on, or every
	// session would lose its network with it.
	var backoff proxy.AcceptBackoff
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if backoff.Retry(err, func(format string, args ...any) { opts.Log.Printf("control socket: "+format, args...) }) {
				continue
			}
			return fmt.Errorf("daemon: control socket: %w", err)
		}
		backoff.Reset()
		go d.serve(ctx, c, cancel)
	}
	// Exiting: close the proxies but keep the records, so that the next
	// daemon serves running sessions again.
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	// A place made now sees stopping and goes (makeSpare).
	d.making.Wait()
	d.mu.Lock()
	spare := d.spare
	d.spare = nil
	var all []*session
	var streams []*stream
	for _, s := range d.sessions {
		all = append(all, s)
		if s.lease != nil {
			streams = append(streams, s.lease)
		}
	}
	for m := range d.monitors {
		streams = append(streams, m)
	}
	d.mu.Unlock()
	for _, s := range all {
		s.px.Close()
	}
	for _, st := range streams {
		st.close()
	}
	if spare != nil {
		spare.discard()
	}
	if opts.Inits != nil {
		opts.Inits.Close()
	}
	opts.Log.Printf("daemon %d exiting", os.Getpid())
	return nil
}

// housekeeping ends detached sessions whose client is gone and stops the
// daemon when it has been idle long enough.
// takeLock takes the daemon lock. A daemon that is exiting has removed its
// control socket but may hold the lock a moment longer (closing its
// watcher, a sandbox init it was cloning that has not exec'd yet): one
// started right after `fence daemon stop`, or on demand just as the last
// one went idle, waits for it (at most 2 s) instead of failing.
func takeLock(lock *os.File, sock string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("daemon lock: %w", err)
		}
		if _, serr := os.Lstat(sock); serr == nil || time.Now().After(deadline) {
			return ErrRunning
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitStopped waits up to timeout until no daemon holds the lock of the
// runtime directory dir: one that was told to stop has then done all it
// does on the way out (its socket goes first, its last log line after).
// It reports whether none holds it.
func WaitStopped(dir string, timeout time.Duration) bool {
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer lock.Close()
	deadline := time.Now().Add(timeout)
	for {
		if unix.Flock(int(lock.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
			unix.Flock(int(lock.Fd()), unix.LOCK_UN)
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *daemon) housekeeping(ctx context.Context, stop func()) {
	every := d.opts.Housekeeping
	if every <= 0 {
		every = min(time.Second, d.opts.Idle/4+time.Millisecond)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var gone []*session
		d.mu.Lock()
		for _, s := range d.sessions {
			// Only restored sessions are detached (detachedAt set): a
			// session being opened has no lease for a moment either.
			if s.lease == nil && !s.detachedAt.IsZero() && (!alive(s.client) || time.Since(s.detachedAt) > 5*time.Minute) {
				gone = append(gone, s)
			}
		}
		d.mu.Unlock()
		for _, s := range gone {
			d.opts.Log.Printf("session %s: client %d is gone; ending it", s.id, s.client.pid)
			d.end(s)
		}
		d.mu.Lock()
		idle := len(d.sessions) == 0 && len(d.monitors) == 0 && time.Since(d.idleSince) >= d.opts.Idle
		d.mu.Unlock()
		if idle {
			d.opts.Log.Printf("idle for %v; exiting", d.opts.Idle)
			stop()
			return
		}
	}
}

func (d *daemon) serve(ctx context.Context, c net.Conn, stop func()) {
	p, err := checkPeer(c, d.self)
	if err != nil {
		d.opts.Log.Printf("control: refused peer: %v", err)
		// The client says why instead of "connection reset". The reason
		// gives nothing away: the peer is the daemon's user (the socket's
		// directory is 0700), at worst inside a sandbox.
		reply(c, control.Response{Error: d.refusal(err)})
		c.Close()
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(io.LimitReader(c, 1<<20))
	var req control.Request
	if err := json.NewDecoder(br).Decode(&req); err != nil {
		reply(c, control.Response{Error: "bad request"})
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	switch req.Op {
	case control.OpOpen:
		if req.Spec == nil {
			reply(c, control.Response{Error: "open: no spec"})
			c.Close()
			return
		}
		d.open(c, p, req)
	case control.OpAttach:
		d.attach(c, p, req.ID)
	case control.OpStatus:
		st := d.status(req.Root)
		reply(c, control.Response{Status: &st})
		c.Close()
	case control.OpMonitor:
		d.monitor(c, req.Root)
	case control.OpInit:
		if req.Context == "" {
			// Only an open leaves the comparison to the client, which
			// gets the init's context with it.
			reply(c, control.Response{Reason: "init: no process context"})
		} else {
			d.takeInit(c, p, req.Context)
		}
		c.Close()
	case control.OpStop:
		reply(c, control.Response{})
		c.Close()
		stop()
	default:
		reply(c, control.Response{Error: fmt.Sprintf("unknown operation %q", req.Op)})
		c.Close()
	}
}

// takeInit passes a booted sandbox init to the client: its answer and the
// two descriptors in one message.
func (d *daemon) takeInit(c net.Conn, p peer, context string) {
	resp, fds := d.handInit(p, context, "")
	defer closeAll(fds)
	if err := replyFDs(c, resp, fds); err != nil && len(fds) > 0 {
		d.opts.Log.Printf("control: hand over a sandbox init: %v", err)
	}
}

// handInit takes a booted init for the peer p: the answer's Init or
// Reason, and the descriptors to send with it (the caller closes them).
func (d *daemon) handInit(p peer, context, exe string) (control.Response, []int) {
	if d.opts.Inits == nil {
		return control.Response{Reason: "this daemon keeps no inits"}, nil
	}
	// What the client says of itself (context) covers its process
	// attributes; where it is, the daemon checks itself.
	if err := samePlace(p, d.self); err != nil {
		return control.Response{Reason: err.Error()}, nil
	}
	d.mu.Lock()
	d.burst = !d.lastExit.IsZero() && time.Since(d.lastExit) < burstGap
	d.mu.Unlock()
	sock, pidfd, initContext, reason := d.opts.Inits.Take(context, exe, p.pid)
	if sock < 0 {
		// The first client, or a burst: have one for the next.
		d.opts.Inits.Refill(0)
		return control.Response{Reason: reason}, nil
	}
	return control.Response{Init: true, InitContext: initContext}, []int{sock, pidfd}
}

// replyFDs sends r with fds (none is a plain reply) in one message.
func replyFDs(c net.Conn, r control.Response, fds []int) error {
	if len(fds) == 0 {
		return reply(c, r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	if _, _, err := c.(*net.UnixConn).WriteMsgUnix(append(b, '\n'), unix.UnixRights(fds...), nil); err != nil {
		return fmt.Errorf("control: send an answer with descriptors: %w", err)
	}
	return nil
}

// refusal is what a refused peer is told.
func (d *daemon) refusal(err error) string {
	msg := fmt.Sprintf("the fence daemon (pid %d) refused this process: %v", os.Getpid(), err)
	if kind := sandbox.ConfinementKind(); kind != "" && errors.Is(err, fs.ErrPermission) {
		// Another confinement of the same kind (config.RuntimeDir), such
		// as another agent's Landlock domain, hides the peer from it.
		msg += fmt.Sprintf("; the daemon runs confined (%s) like the fence that started it, and cannot see this process: "+
			"stop it (kill %d) or wait until it exits, %v after its last session", kind, os.Getpid(), d.opts.Idle)
	}
	return msg
}

func reply(c net.Conn, r control.Response) error {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	return json.NewEncoder(c).Encode(r)
}

func (d *daemon) resolve(spec control.Spec) (res Resolution, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("BUG: policy resolver panicked: %v", r)
		}
	}()
	return d.opts.Resolve(spec)
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// open registers a new session for the peer p; c becomes its lease. The
// answer goes out before the policy is loaded: the client is waiting for
// it to start the sandbox, and resolves the same policy itself meanwhile.
// Until the daemon has it, the session's proxies hold their requests.
func (d *daemon) open(c net.Conn, p peer, req control.Request) {
	spec := *req.Spec
	pl, err := d.takePlace()
	if err != nil {
		reply(c, control.Response{Error: err.Error()})
		c.Close()
		return
	}
	s := &session{id: pl.id, dir: pl.dir, spec: spec, started: time.Now(), client: p, hosts: map[string]int{}}
	if err := d.start(s, nil, pl.lns); err != nil {
		os.RemoveAll(s.dir)
		reply(c, control.Response{Error: err.Error()})
		c.Close()
		return
	}
	var resp control.Response
	var fds []int
	if req.Init {
		resp, fds = d.handInit(p, req.Context, req.Exe)
	}
	d.lease(c, s, resp, fds, func() {
		d.mu.Lock()
		if !s.closed {
			s.resolve = time.AfterFunc(d.opts.ResolveDelay, func() { d.resolveOnce(s) })
		}
		d.mu.Unlock()
	})
}

// resolveOnce loads the session's first policy, once.
func (d *daemon) resolveOnce(s *session) {
	s.resolveOnce.Do(func() {
		d.resolveFirst(s)
		d.opts.Log.Printf("session %s: opened for %s by pid %d", s.id, s.root, s.client.pid)
	})
}

// resolveFirst loads a new session's policy and lets its proxies decide.
// A policy the daemon cannot load or watch leaves the session refusing
// every connection (fail closed) and tells the client why.
func (d *daemon) resolveFirst(s *session) {
	// A reload (a config change already seen) waits for the first rules.
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	res, err := d.resolve(s.spec)
	root := res.Root
	if err != nil {
		// For monitors and status (fence monitor DIR): the directory the
		// client named, its project root being unknown.
		root = s.spec.Dir
	}
	d.mu.Lock()
	s.root = root
	d.mu.Unlock()
	if err == nil {
		err = d.setWatch(s, res.Watch)
	}
	if err != nil {
		s.px.SetRules(proxy.Rules{})
		d.opts.Log.Printf("session %s: %v", s.id, err)
		d.emit(s, proxy.Event{Kind: proxy.KindConfigError, Detail: err.Error() + " (the daemon has no policy for this session: every connection is refused)"})
		return
	}
	s.px.SetRules(res.Rules)
	// Most sessions end within milliseconds (fence -- CMD): they get a
	// record only if they outlive recordDelay. A daemon that dies before
	// then leaves the session without one: its connections fail closed.
	d.mu.Lock()
	if !s.closed {
		s.record = time.AfterFunc(recordDelay, func() { d.save(s) })
	}
	d.mu.Unlock()
}

// recordDelay is how long a new session runs before its record is written.
const recordDelay = 200 * time.Millisecond

// start serves s's proxies on its directory's sockets (lns: listening
// already, or nil) and registers it. Nil rules are not known yet:
// requests wait for [proxy.Session.SetRules].
func (d *daemon) start(s *session, rules *proxy.Rules, lns []net.Listener) error {
	cfg := proxy.Config{
		ID: s.id, Project: s.root, Pending: rules == nil, Resolver: d.opts.Resolver, Log: d.opts.Log,
		MaxConns: d.maxConns, Budget: d.budget,
		Emit: func(e proxy.Event) { d.emit(s, e) },
	}
	if rules != nil {
		cfg.Rules = *rules
	} else {
		cfg.NeedRules = func() { go d.resolveOnce(s) }
	}
	if lns == nil {
		var err error
		if lns, err = listenSession(s.dir); err != nil {
			return err
		}
	}
	s.px = proxy.NewSession(cfg)
	go s.px.ServeHTTP(lns[0])
	go s.px.ServeSOCKS(lns[1])
	d.mu.Lock()
	d.sessions[s.id] = s
	d.mu.Unlock()
	return nil
}

// listenSession listens on a session directory's two proxy sockets.
func listenSession(dir string) ([]net.Listener, error) {
	var lns []net.Listener
	for _, name := range []string{"http.sock", "socks.sock"} {
		path := filepath.Join(dir, name)
		os.Remove(path)
		ln, err := net.Listen("unix", path)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("session socket: %w", err)
		}
		os.Chmod(path, 0o600)
		lns = append(lns, ln)
	}
	return lns, nil
}

// sessionPlace is a new session's directory with its proxy sockets
// listening. The daemon makes the next one ahead (spare): the mkdir and
// the two sockets took 0.3 ms of CPU (a profile over 100 runs) before the
// answer a client waits for.
type sessionPlace struct {
	id, dir string
	lns     []net.Listener
}

func (d *daemon) newPlace() (*sessionPlace, error) {
	id := newID()
	dir := filepath.Join(d.opts.Dir, sessionsDir, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("session directory: %v", err)
	}
	if placeHook != nil {
		placeHook()
	}
	lns, err := listenSession(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &sessionPlace{id: id, dir: dir, lns: lns}, nil
}

// placeHook, when set (tests), runs between a place's directory and its
// sockets.
var placeHook func()

// takePlace returns the spare place, or makes one.
func (d *daemon) takePlace() (*sessionPlace, error) {
	d.mu.Lock()
	pl := d.spare
	d.spare = nil
	d.mu.Unlock()
	if pl != nil {
		return pl, nil
	}
	return d.newPlace()
}

// makeSpare makes the next session's place, unless one is made or the
// daemon is stopping.
func (d *daemon) makeSpare() {
	d.mu.Lock()
	skip := d.spare != nil || d.stopping
	if !skip {
		d.making.Add(1)
	}
	d.mu.Unlock()
	if skip {
		return
	}
	defer d.making.Done()
	pl, err := d.newPlace()
	if err != nil {
		return // the next open makes its own, and says why if it cannot
	}
	d.mu.Lock()
	if d.spare == nil && !d.stopping {
		d.spare, pl = pl, nil
	}
	d.mu.Unlock()
	if pl != nil {
		pl.discard()
	}
}

func (pl *sessionPlace) discard() {
	for _, ln := range pl.lns {
		ln.Close()
	}
	os.RemoveAll(pl.dir)
}

// lease ties s to c: events of s stream on c, and when c closes (the
// client ended or died) s ends. afterReply, if not nil, runs once the
// session's answer is sent.
// resp carries what else the answer says (an init handed over, with fds,
// which lease closes once they are sent).
func (d *daemon) lease(c net.Conn, s *session, resp control.Response, fds []int, afterReply func()) {
	st := newStream(c)
	d.mu.Lock()
	if s.lease != nil {
		s.lease.close()
	}
	s.lease = st
	info := d.info(s)
	d.mu.Unlock()
	resp.Session = &info
	if err := replyFDs(c, resp, fds); err != nil {
		st.close()
	}
	// The daemon's copies of what went with the answer (a handed init's
	// socket and pidfd) must not outlive it: a client killed later must
	// leave the init its socket's end of file at once.
	closeAll(fds)
	if afterReply != nil {
		afterReply()
	}
	// The client sends nothing more but descriptors to close for it
	// (control.Conn.Discard); a read returns when it closes, or
	// half-closes to end the session and have its final counts.
	drainLease(c)
	d.mu.Lock()
	current := s.lease == st
	stopping := d.stopping
	d.mu.Unlock()
	if current && !stopping {
		st.finish(func() control.Message {
			d.mu.Lock()
			info := d.info(s)
			d.mu.Unlock()
			return control.Message{Final: &info}
		})
	}
	st.close()
	if stopping {
		return // the daemon's exit ends every session
	}
	// A client is done: the moment to boot the next warm init, not while
	// one waits for an answer; and once the client has exited (or after
	// refillWait): the boot (a fork, a Go start, the mounts: a few
	// milliseconds of CPU) made a short command's exit 0.3 ms slower on
	// two cores when it began at the lease's end. Begun at the exit, it
	// still competed with the wake-up of what waited for that exit (a
	// shell, a script) and the last sandbox's teardown: a moment later
	// (refillPause) a lone command took 0.3-0.4 ms less. The session's own
	// end (its proxies, directory, record and log line) and the next
	// session's place wait as well (0.15 ms less). Commands in a burst
	// (the next one asking within burstGap of the last exit: a script, a
	// loop) have it all at once, as their next one would wait for its
	// boot; so does a client that asks during the pause.
	d.mu.Lock()
	pause := refillPause
	if d.burst {
		pause = 0
	}
	d.mu.Unlock()
	if current {
		time.AfterFunc(pause, func() {
			d.mu.Lock()
			stopping := d.stopping
			d.mu.Unlock()
			if !stopping {
				d.end(s)
			}
		})
	}
	go func() {
		waitExit(s.client, refillWait)
		d.mu.Lock()
		d.lastExit = time.Now()
		d.mu.Unlock()
		if d.opts.Inits != nil {
			d.opts.Inits.Refill(pause)
		}
		time.Sleep(pause)
		d.makeSpare()
	}()
}

// refillWait bounds how long the next warm init waits for the exit of the
// client whose lease ended; refillPause is how long it waits after that,
// unless clients come in a burst: one asking within burstGap of the last
// one's exit.
const (
	refillWait  = 100 * time.Millisecond
	refillPause = 3 * time.Millisecond
)

// burstGap is a variable for tests.
var burstGap = 20 * time.Millisecond

// drainLease reads a lease until EOF and closes the descriptors the client
// handed over, in the background once the client is done: closing an
// inotify instance waits for an SRCU grace period, which must delay
// neither the client nor the session's final counts. The close waits for
// the EOF so that it is the last one (the client closes its copy before it
// half-closes the lease); a client whose own close came last would wait.
func drainLease(c net.Conn) {
	u, ok := c.(*net.UnixConn)
	if !ok {
		io.Copy(io.Discard, c)
		return
	}
	var held []int
	defer func() {
		if len(held) > 0 {
			go closeAll(held)
		}
	}()
	buf := make([]byte, 512)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := u.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
				for i := range msgs {
					if fds, rerr := unix.ParseUnixRights(&msgs[i]); rerr == nil {
						held = append(held, fds...)
					}
				}
			}
		}
		if err != nil || n == 0 {
			return
		}
		if len(held) > 64 {
			// Not a client of ours: do not hoard descriptors.
			closeAll(held)
			held = nil
		}
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// attach gives a restored session a new lease.
func (d *daemon) attach(c net.Conn, p peer, id string) {
	d.mu.Lock()
	s := d.sessions[id]
	d.mu.Unlock()
	if s == nil {
		reply(c, control.Response{Error: fmt.Sprintf("no session %q (it ended, or its daemon lost it)", id)})
		c.Close()
		return
	}
	// Only the process that opened the session may take it over.
	if s.client.pid != 0 && (p.pid != s.client.pid || p.start != s.client.start) {
		reply(c, control.Response{Error: fmt.Sprintf("session %q belongs to another process", id)})
		c.Close()
		return
	}
	d.opts.Log.Printf("session %s: reattached", id)
	d.lease(c, s, control.Response{}, nil, nil)
}

// end stops s and removes its sockets, record and watches.
func (d *daemon) end(s *session) {
	d.mu.Lock()
	if s.closed {
		d.mu.Unlock()
		return
	}
	s.closed = true
	delete(d.sessions, s.id)
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.record != nil {
		s.record.Stop()
	}
	if s.resolve != nil {
		s.resolve.Stop()
	}
	for _, dir := range s.dirs {
		d.unwatchLocked(dir, s)
	}
	if len(d.sessions) == 0 {
		d.idleSince = time.Now()
	}
	lease := s.lease
	d.mu.Unlock()
	if lease != nil {
		lease.close()
	}
	s.px.Close()
	os.RemoveAll(s.dir)
	// After a save in progress (closed is set: no new one starts).
	s.saveMu.Lock()
	os.Remove(filepath.Join(d.opts.Dir, recordsDir, s.id+".json"))
	s.saveMu.Unlock()
	d.opts.Log.Printf("session %s: ended", s.id)
}

func (d *daemon) info(s *session) control.SessionInfo {
	hosts := make(map[string]int, len(s.hosts))
	for h, n := range s.hosts {
		hosts[h] = n
	}
	return control.SessionInfo{ID: s.id, Dir: s.dir, Root: s.root, Started: s.started, Client: s.client.pid,
		Active: s.px.Active(), Blocked: s.blocked, Hosts: hosts, Errors: s.errors, Rules: s.px.Rules()}
}

func (d *daemon) status(root string) control.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := control.Status{PID: os.Getpid(), Started: d.started, Dir: d.opts.Dir, Sessions: []control.SessionInfo{}}
	for _, s := range d.sessions {
		if root == "" || s.root == root {
			st.Sessions = append(st.Sessions, d.info(s))
		}
	}
	sort.Slice(st.Sessions, func(i, j int) bool { return st.Sessions[i].Started.Before(st.Sessions[j].Started) })
	if d.opts.Inits != nil {
		st.WarmInit = d.opts.Inits.State()
	}
	return st
}

func (d *daemon) monitor(c net.Conn, root string) {
	st := newStream(c)
	st.root = root
	d.mu.Lock()
	d.monitors[st] = struct{}{}
	d.mu.Unlock()
	if reply(c, control.Response{}) == nil {
		io.Copy(io.Discard, c)
	}
	st.close()
	d.mu.Lock()
	delete(d.monitors, st)
	if len(d.sessions) == 0 && len(d.monitors) == 0 {
		d.idleSince = time.Now()
	}
	d.mu.Unlock()
}

// emit counts e for s and sends it to s's lease and to the monitors.
func (d *daemon) emit(s *session, e proxy.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e.Session, e.Project = s.id, s.root
	switch e.Kind {
	case proxy.KindBlocked:
		s.blocked++
		h := e.Host
		if h == "" {
			h = e.Target
		}
		if len(s.hosts) < 1000 {
			s.hosts[h]++
		}
	case proxy.KindConfigError:
		s.errors++
	}
	if s.lease != nil {
		s.lease.send(e)
	}
	for m := range d.monitors {
		if m.root == "" || m.root == s.root {
			m.send(e)
		}
	}
}

// save writes s's record atomically.
func (d *daemon) save(s *session) {
	// The record timer and a reload may save at once: one at a time, so
	// that the last rules set are the last written.
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	d.mu.Lock()
	if s.closed {
		d.mu.Unlock()
		return
	}
	r := record{ID: s.id, Spec: s.spec, Root: s.root, Started: s.started, ClientPID: s.client.pid,
		ClientStart: s.client.start, Rules: s.px.Rules(), Watch: s.paths}
	d.mu.Unlock()
	b, _ := json.MarshalIndent(r, "", "  ")
	path := filepath.Join(d.opts.Dir, recordsDir, s.id+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		d.opts.Log.Printf("session %s: record: %v", s.id, err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		d.opts.Log.Printf("session %s: record: %v", s.id, err)
	}
}

// restore serves again the sessions a previous daemon left records for,
// on the same sockets, so that running sandboxes keep their network.
func (d *daemon) restore() {
	dir := filepath.Join(d.opts.Dir, recordsDir)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			os.Remove(path)
			continue
		}
		b, err := os.ReadFile(path)
		var r record
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil || r.ID != id || len(id) != 16 || strings.ContainsAny(id, "/.") {
			d.opts.Log.Printf("records: dropping %s: unreadable", e.Name())
			os.Remove(path)
			continue
		}
		s := &session{id: id, spec: r.Spec, root: r.Root, started: r.Started,
			client: peer{pid: r.ClientPID, start: r.ClientStart}, hosts: map[string]int{}, detachedAt: time.Now()}
		s.dir = filepath.Join(d.opts.Dir, sessionsDir, id)
		if !alive(s.client) {
			d.opts.Log.Printf("session %s: client %d is gone; dropping", id, r.ClientPID)
			os.Remove(path)
			os.RemoveAll(s.dir)
			continue
		}
		rules, watch := r.Rules, r.Watch
		if res, err := d.resolve(r.Spec); err == nil && !res.Keep {
			rules, watch = res.Rules, res.Watch
		} else if err != nil {
			d.opts.Log.Printf("session %s: %v; keeping its last good policy", id, err)
		}
		if err := os.Mkdir(s.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			d.opts.Log.Printf("session %s: %v", id, err)
			continue
		}
		if err := d.start(s, &rules, nil); err != nil {
			d.opts.Log.Printf("session %s: %v", id, err)
			continue
		}
		if err := d.setWatch(s, watch); err != nil {
			d.opts.Log.Printf("session %s: %v", id, err)
			d.end(s)
			continue
		}
		d.save(s)
		d.opts.Log.Printf("session %s: restored", id)
	}
}

func rulesEqual(a, b proxy.Rules) bool { return reflect.DeepEqual(a, b) }
