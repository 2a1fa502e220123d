package sandbox

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The client and the init talk over a SOCK_SEQPACKET socketpair: one
// message per packet (wire_linux.go), file descriptors alongside with
// SCM_RIGHTS.

// message is every message in either direction.
type message struct {
	Kind string
	// "config": Config (client → init).
	Config *initConfig
	// "ready" (init → client): the command is about to run. Debug lines
	// and downgrade notices ride along.
	Debug   []string
	Notices []string
	// Sync asks the client to answer "go" once it has printed them.
	Sync bool
	// "error" (init → client): setup failed.
	Error string
	Hint  string
	// "tty" (init → client): the PTY master rides along.
	// "exit" (init → client): the command's status; Alone says that no
	// other process is left in the sandbox (the init's exit may follow).
	// Offline says that no TCP connection was ever accepted in the
	// sandbox: nothing went through its proxy relays.
	Status  int
	Alone   bool
	Offline bool
	// LeftFor is the working directory of a command that stopped itself
	// to leave (initConfig.StopToLeave), read by the init.
	LeftFor string
	// KilledBy is the signal that killed the command, 0 when it exited
	// (a shell's `exit 130` and a SIGINT death both make Status 130).
	KilledBy int
	// "local" (init → client): a connection to relay to the host's
	// 127.0.0.1:Port; "publish" (client → init): a host connection to
	// relay to the sandbox's 127.0.0.1:Port.
	Port int
	// "suspend" (client → init): stop every process in the sandbox, then
	// answer "suspended"; "resume" (client → init): continue them.
	// "stopped" (init → client): the command stopped (Ctrl-Z in its PTY,
	// or it stopped itself); "continue" (client → init): continue its
	// process group.
	// Stamps time the init's phases for -d ("ready", "exit").
	Stamps []stamp
}

const maxMessage = 200 << 10

func sendMsg(fd int, m *message, fds ...int) error {
	b := marshalMessage(m)
	if len(b) > maxMessage {
		return fmt.Errorf("message too large (%d bytes)", len(b))
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for {
		err := unix.Sendmsg(fd, b, oob, nil, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// initConn is the client's end of a sandbox init's socket, in Go's
// netpoller (see pollable): the read loop, which waits on it for the whole
// session, holds no thread of its own.
type initConn struct {
	f  *os.File
	rc syscall.RawConn
}

// newInitConn takes over fd.
func newInitConn(fd int) (*initConn, error) {
	f, err := pollable(fd, "fence-init")
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &initConn{f: f, rc: rc}, nil
}

// send is sendMsg on c.
func (c *initConn) send(m *message, fds ...int) error {
	var err error
	if werr := c.rc.Write(func(fd uintptr) bool {
		err = sendMsg(int(fd), m, fds...)
		return err != unix.EAGAIN
	}); werr != nil {
		return werr
	}
	return err
}

// recv is recvMsg on c.
func (c *initConn) recv() (*message, []int, error) {
	var m *message
	var fds []int
	var err error
	if rerr := c.rc.Read(func(fd uintptr) bool {
		m, fds, err = recvMsg(int(fd))
		return err != unix.EAGAIN
	}); rerr != nil {
		return nil, nil, rerr
	}
	return m, fds, err
}

func (c *initConn) close() { c.f.Close() }

// recvMsg reads one message; io errors and EOF are returned as err
// (EOF as errPeerGone).
func recvMsg(fd int) (*message, []int, error) {
	bp := recvBufs.Get().(*[]byte)
	defer recvBufs.Put(bp)
	buf := *bp
	oob := make([]byte, unix.CmsgSpace(4*4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	var fds []int
	if oobn > 0 {
		scms, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
			for _, scm := range scms {
				if f, err := unix.ParseUnixRights(&scm); err == nil {
					fds = append(fds, f...)
				}
			}
		}
	}
	if n == 0 {
		for _, f := range fds {
			unix.Close(f)
		}
		return nil, nil, errPeerGone
	}
	m, err := unmarshalMessage(buf[:n])
	if err != nil {
		for _, f := range fds {
			unix.Close(f)
		}
		return nil, nil, fmt.Errorf("bad message: %w", err)
	}
	return m, fds, nil
}

// recvBufs are recvMsg's buffers: a fresh one per message was a new
// 200 KiB span for every message of a short-lived process (nothing is
// collected that soon), most of it never touched. A decoded message keeps
// nothing of it.
var recvBufs = sync.Pool{New: func() any {
	b := make([]byte, maxMessage)
	return &b
}}

var errPeerGone = fmt.Errorf("peer closed the connection")
