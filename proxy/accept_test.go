package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// failingListener fails its first n accepts with err.
type failingListener struct {
	net.Listener
	mu  sync.Mutex
	n   int
	err error
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestAcceptSurvivesShortage: a session's listener goes on through accept
// errors that pass (the daemon out of descriptors a moment); it returned
// on them, and the sandbox had no network from then on.
func TestAcceptSurvivesShortage(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		t.Run(errno.Error(), func(t *testing.T) {
			sock := t.TempDir() + "/http.sock"
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			s := NewSession(Config{Rules: *mustRules(t, nil, nil)})
			defer s.Close()
			served := make(chan error, 1)
			fail := &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", errno)}
			go func() { served <- s.ServeHTTP(&failingListener{Listener: ln, n: 4, err: fail}) }()
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			io.WriteString(c, "GET http://blocked.example/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			b, _ := io.ReadAll(c)
			if statusOf(string(b)) != 403 {
				select {
				case err := <-served:
					t.Fatalf("the listener was given up after a passing error: ServeHTTP returned %v", err)
				default:
					t.Fatalf("got %q, want a 403", b)
				}
			}
		})
	}
	// Other errors still end the loop.
	ln, err := net.Listen("unix", t.TempDir()+"/x.sock")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSession(Config{})
	defer s.Close()
	want := &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EINVAL)}
	if err := s.ServeHTTP(&failingListener{Listener: ln, n: 1, err: want}); err != want {
		t.Errorf("ServeHTTP after EINVAL: %v, want it returned", err)
	}
}
