package control

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"syscall"
	"testing"
)

// TestStream reads an answer and the lease's lines after it, as the
// daemon writes them, over a unix socket and over a plain net.Conn: the
// event that came in the answer's write, then the final counts, then a
// line cut short.
func TestStream(t *testing.T) {
	var lines [3][]byte
	var want struct {
		answer       Response
		event, final Message
	}
	for i, v := range []struct {
		sent, read any
	}{{Response{Session: fullSession()}, &want.answer}, {Message{Event: fullEvent()}, &want.event}, {Message{Final: fullSession()}, &want.final}} {
		b, err := json.Marshal(v.sent)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v.read); err != nil {
			t.Fatal(err)
		}
		lines[i] = append(b, '\n')
	}
	for name, pair := range map[string]func(t *testing.T) (client, daemon net.Conn){"unix": unixPair, "pipe": pipePair} {
		t.Run(name, func(t *testing.T) {
			client, daemon := pair(t)
			c := &Conn{c: client}
			defer c.Close()
			go func() {
				defer daemon.Close()
				daemon.Write(append(lines[0], lines[1]...))
				daemon.Write(lines[2])
				daemon.Write([]byte(`{"event":{`))
			}()
			resp, err := c.Answer(OpOpen)
			if err != nil || !reflect.DeepEqual(*resp, want.answer) {
				t.Errorf("answer: %+v, %v; want %+v", resp, err, want.answer)
			}
			if e, err := c.Next(); err != nil || !reflect.DeepEqual(e, want.event.Event) {
				t.Errorf("first line: %+v, %v; want %+v", e, err, want.event.Event)
			}
			if _, err := c.Next(); !errors.Is(err, ErrEnded) || !reflect.DeepEqual(c.Final(), want.final.Final) {
				t.Errorf("second line: %v, final %+v; want %v, %+v", err, c.Final(), ErrEnded, want.final.Final)
			}
			if _, err := c.Next(); err != io.ErrUnexpectedEOF {
				t.Errorf("a line cut short: %v, want %v", err, io.ErrUnexpectedEOF)
			}
		})
	}
}

func pipePair(t *testing.T) (client, daemon net.Conn) {
	return net.Pipe()
}

func unixPair(t *testing.T) (client, daemon net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return conns[0], conns[1]
}
