package sandbox

import (
	"io"
	"net"
	"sync"
)

// pipeConns copies between a connection from inside the sandbox and one
// outside until both directions are done, passing on half-closes. out, if
// not nil, has counted this connection (drain.add) and is told when the
// copy from inside to outside has ended.
func pipeConns(inside, outside net.Conn, out *drain) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn, done func()) {
		defer wg.Done()
		defer done()
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go cp(outside, inside, out.done)
	go cp(inside, outside, func() {})
	wg.Wait()
	inside.Close()
	outside.Close()
}

// drain counts the relayed connections out of a sandbox whose copy out
// has not ended, from the moment each is accepted. When the command exits,
// what the sandbox's processes wrote just before they died is still passed
// on, as the kernel delivers a dead process's sent data: their sockets
// reach EOF once that data is read, so the copies end by themselves; wait
// bounds it for a peer outside that does not read. (The init's
// quiesceRelays sees that connections still in a listener's queue when the
// sandbox ends are accepted and counted first.) A nil drain counts
// nothing.
type drain struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0, for a waiter
}

func (d *drain) done() {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.n--
	if d.n == 0 && d.idle != nil {
		close(d.idle)
		d.idle = nil
	}
	d.mu.Unlock()
}
