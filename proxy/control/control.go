// Package control is the protocol between the fence command line and the
// proxy daemon over the daemon's control socket: one JSON request per
// connection, one JSON response, then (for sessions and monitors) a stream
// of events until either side closes. It holds the message types and the
// client side; the daemon serves it.
//
// The control socket only answers peers outside every sandbox (the daemon
// checks the peer's namespaces); nothing in these messages identifies or
// authenticates anyone.
package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fence-dev/fence/proxy"
)

// SocketName is the control socket's file name in the runtime directory.
const SocketName = "ctl.sock"

// Operations.
const (
	OpOpen    = "open"    // register a session; the connection is its lease
	OpAttach  = "attach"  // take the lease of a restored session after a daemon restart
	OpStatus  = "status"  // daemon and session summary
	OpMonitor = "monitor" // stream events (all sessions, or one project)
	OpStop    = "stop"    // ask the daemon to exit
	OpInit    = "init"    // take a sandbox init booted ahead (see TakeInit)
)

// Spec is what the daemon needs to resolve (and re-resolve) a session's
// policy: the inputs, never the result, so that a live reload reads the
// same files the session started from.
type Spec struct {
	Dir       string   `json:"dir"`
	Settings  string   `json:"settings,omitempty"`
	Templates []string `json:"templates,omitempty"`
	Publish   []int    `json:"publish,omitempty"`
	// Env holds the client's variables that locate the user's config,
	// data and trust store (HOME, XDG_CONFIG_HOME, ...): the daemon
	// resolves with the client's view, not with whatever environment the
	// daemon happened to start with.
	Env map[string]string `json:"env,omitempty"`
}

// EnvKeys are the variables a [Spec] carries.
var EnvKeys = []string{"HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"}

// Request is the one message a client sends.
type Request struct {
	Op   string `json:"op"`
	Spec *Spec  `json:"spec,omitempty"` // open
	ID   string `json:"id,omitempty"`   // attach
	Root string `json:"root,omitempty"` // monitor, status: only this project ("" all)
	// Context is the client's process context (sandbox.InitContext): init
	Context string `json:"context,omitempty"`
	// Init asks for a warm init with the session (as OpInit), in the same
	// round trip: open
	Init bool `json:"init,omitempty"`
	// Exe is the identity of the client's binary (sandbox.ExeIdentity),
	// with Init: a daemon whose init another binary booted keeps it.
	Exe string `json:"exe,omitempty"`
}

// Response is the daemon's answer; for open, attach and monitor it is
// followed by [Message] lines.
type Response struct {
	Error   string       `json:"error,omitempty"`
	Session *SessionInfo `json:"session,omitempty"`
	Status  *Status      `json:"status,omitempty"`
	// Init says that the init's socket and pidfd ride along (SCM_RIGHTS);
	// otherwise Reason says why there is none: init, and open with Init.
	Init   bool   `json:"init,omitempty"`
	Reason string `json:"reason,omitempty"`
	// InitContext is the handed init's process context, for a client that
	// compares it with its own (an open with Init and no Context).
	InitContext string `json:"initContext,omitempty"`
}

// SessionInfo describes one session.
type SessionInfo struct {
	ID      string         `json:"id"`
	Dir     string         `json:"dir"` // holds http.sock and socks.sock
	Root    string         `json:"root,omitempty"`
	Started time.Time      `json:"started"`
	Client  int            `json:"clientPid,omitempty"`
	Active  int            `json:"activeConnections"`
	Blocked int            `json:"blocked"`
	Hosts   map[string]int `json:"blockedHosts,omitempty"`
	Errors  int            `json:"configErrors,omitempty"`
	Rules   proxy.Rules    `json:"-"`
}

// Status is the daemon's summary for `fence status` and `fence daemon status`.
type Status struct {
	PID      int           `json:"pid"`
	Started  time.Time     `json:"started"`
	Dir      string        `json:"runtimeDir"`
	Sessions []SessionInfo `json:"sessions"`
	// WarmInit is the state of the sandbox init the daemon keeps booted
	// ahead: "ready", "booting", "none", or why there is none.
	WarmInit string `json:"warmInit,omitempty"`
}

// Message is one line of an event stream. The last line on a session's
// lease, after the client half-closes it ([Conn.CloseWrite]), carries the
// session's final counts in Final instead of an event: the exact figures
// for the client's summary without a second connection.
type Message struct {
	Event proxy.Event  `json:"event"`
	Final *SessionInfo `json:"final,omitempty"`
}

// ErrNoDaemon is returned by [Dial] when no daemon answers.
var ErrNoDaemon = errors.New("the fence daemon is not running")

// Conn is a client connection to the daemon.
type Conn struct {
	c     net.Conn
	r     *bufio.Reader // the event stream after the answer
	final *SessionInfo
	fds   []int // descriptors that came with the answer, until taken
}

// Dial connects to the daemon of runtime directory dir.
func Dial(dir string) (*Conn, error) {
	c, err := net.DialTimeout("unix", filepath.Join(dir, SocketName), 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDaemon, err)
	}
	return &Conn{c: c}, nil
}

// Call sends req and reads the response, with any descriptors that came
// with it (see [Conn.TakeFDs]). A daemon that refuses the peer says why
// and closes the connection; that is an error too.
func (c *Conn) Call(req Request) (*Response, error) {
	if err := c.Send(req); err != nil {
		return nil, err
	}
	return c.Answer(req.Op)
}

// Send sends req; [Conn.Answer] reads the response. Between the two the
// daemon works on the request while the caller does something else.
func (c *Conn) Send(req Request) error {
	c.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	defer c.c.SetWriteDeadline(time.Time{})
	// The bytes json.Encoder writes, without its reflection: MarshalJSON
	// is compact already (TestRequestJSON).
	b, err := req.MarshalJSON()
	if err == nil {
		_, err = c.c.Write(append(b, '\n'))
	}
	if err != nil {
		// A daemon that refuses the peer says why and closes without
		// reading: the write fails, and the reason is there to read.
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			if resp, aerr := c.Answer(req.Op); resp != nil && aerr != nil {
				return aerr
			}
		}
		return fmt.Errorf("control %s: %w", req.Op, err)
	}
	return nil
}

// DaemonError is an error the daemon answered: it runs, and says what is
// wrong.
type DaemonError struct{ Msg string }

func (e *DaemonError) Error() string { return e.Msg }

// Answer reads the response to the request of operation op sent before.
func (c *Conn) Answer(op string) (*Response, error) {
	c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.c.SetReadDeadline(time.Time{})
	line, err := c.readAnswer()
	if err != nil {
		return nil, fmt.Errorf("control %s: no answer from the daemon: %w", op, err)
	}
	var resp Response
	if err := unmarshal(line, &resp, decodeResponse); err != nil {
		return nil, fmt.Errorf("control %s: %w", op, err)
	}
	if resp.Error != "" {
		return &resp, &DaemonError{Msg: resp.Error}
	}
	return &resp, nil
}

// readAnswer reads the answer line, collecting descriptors that come with
// it: the daemon writes the line in one sendmsg with them, and a buffered
// reader would drop them. What was read past the line (the first events)
// is left for Next.
func (c *Conn) readAnswer() ([]byte, error) {
	uc, ok := c.c.(*net.UnixConn)
	if !ok {
		br := bufio.NewReader(c.c)
		line, err := br.ReadBytes('\n')
		c.r = br
		return line, err
	}
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(2*4))
	var line []byte
	for {
		n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			c.fds = append(c.fds, parseRights(oob[:oobn])...)
		}
		line = append(line, buf[:max(n, 0)]...)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			rest := line[i+1:]
			c.r = bufio.NewReader(io.MultiReader(bytes.NewReader(rest), c.c))
			return line[:i+1], nil
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, io.ErrUnexpectedEOF
		}
		if len(line) > 1<<20 {
			return nil, errors.New("answer too long")
		}
	}
}

// TakeFDs returns the descriptors that came with the answer; the caller
// owns them. Those not taken are closed with the connection.
func (c *Conn) TakeFDs() []int {
	fds := c.fds
	c.fds = nil
	return fds
}

// ErrEnded is returned by [Conn.Next] after the session's final counts
// arrived (see [Conn.Final]).
var ErrEnded = errors.New("control: the session ended")

// Next reads the next streamed event. It returns an error when the stream
// ends (the daemon exited, or closed the session): [ErrEnded] when it
// ended with the session's final counts.
func (c *Conn) Next() (proxy.Event, error) {
	// The daemon's json.Encoder writes a message a line; a json.Decoder
	// here would cost a fresh process some 30 µs more.
	line, err := c.r.ReadBytes('\n')
	if err == io.EOF && len(line) > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return proxy.Event{}, err
	}
	var m Message
	if err := unmarshal(line, &m, decodeMessage); err != nil {
		return proxy.Event{}, err
	}
	if m.Final != nil {
		c.final = m.Final
		return proxy.Event{}, ErrEnded
	}
	return m.Event, nil
}

// Final returns the session's counts sent at its end, once [Conn.Next]
// returned [ErrEnded]; nil before, or when the daemon sent none.
func (c *Conn) Final() *SessionInfo { return c.final }

// CloseWrite half-closes a session's lease: the daemon ends the session,
// sends its final counts and closes the connection.
func (c *Conn) CloseWrite() error {
	if u, ok := c.c.(*net.UnixConn); ok {
		return u.CloseWrite()
	}
	return c.c.Close()
}

// Discard hands f to the daemon over a session's lease, to be closed
// there, and closes this process's copy: for descriptors whose last close
// may block (an inotify instance waits for an SRCU grace period). It
// reports whether the daemon got it; if not, f is closed here.
func (c *Conn) Discard(f *os.File) bool {
	defer f.Close()
	u, ok := c.c.(*net.UnixConn)
	if !ok {
		return false
	}
	u.SetWriteDeadline(time.Now().Add(time.Second))
	defer u.SetWriteDeadline(time.Time{})
	_, _, err := u.WriteMsgUnix([]byte{0}, syscall.UnixRights(int(f.Fd())), nil)
	return err == nil
}

// Close closes the connection; for a session's lease, that ends the session.
func (c *Conn) Close() error {
	for _, fd := range c.TakeFDs() {
		syscall.Close(fd)
	}
	return c.c.Close()
}

// Do dials dir, sends req and closes the connection.
func Do(dir string, req Request) (*Response, error) {
	c, err := Dial(dir)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Call(req)
}

// TakeInit asks the daemon of runtime directory dir for a sandbox init it
// booted ahead, for a client whose process context is context. It returns
// the client's end of the init's socket and a pidfd of the init (the
// caller owns both), or why the daemon has none for it. It never starts a
// daemon. (A session's open can ask for one too: [Request].Init.)
func TakeInit(dir, context string) (sock, pidfd int, reason string, err error) {
	c, err := Dial(dir)
	if err != nil {
		return -1, -1, "", err
	}
	defer c.Close()
	resp, err := c.Call(Request{Op: OpInit, Context: context})
	if err != nil {
		return -1, -1, "", err
	}
	return c.Init(resp)
}

// Init returns the init that came with resp: its socket and pidfd, which
// the caller then owns, or why the daemon had none.
func (c *Conn) Init(resp *Response) (sock, pidfd int, reason string, err error) {
	if !resp.Init {
		return -1, -1, resp.Reason, nil
	}
	fds := c.TakeFDs()
	if len(fds) != 2 {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return -1, -1, "", fmt.Errorf("control %s: %d descriptors with the answer, want 2", OpInit, len(fds))
	}
	return fds[0], fds[1], "", nil
}

func parseRights(oob []byte) []int {
	var fds []int
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for i := range msgs {
		if f, err := syscall.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}
