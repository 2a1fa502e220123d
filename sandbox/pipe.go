package sandbox

import (
	"io"
	"net"
	"sync"
)

// pipeConns copies between a connection from inside the sandbox and one
// outside until both directions are done, passing on half-closes. out, if
// not nil, tracks the copy from inside to outside (see drain).
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
	outDone := func() {}
	if out != nil {
		out.wg.Add(1)
		outDone = out.wg.Done
	}
	go cp(outside, inside, outDone)
	go cp(inside, outside, func() {})
	wg.Wait()
	inside.Close()
	outside.Close()
}

// drain tracks the relayed copies out of a sandbox. When the command
// exits, what the sandbox's processes wrote just before they died is still
// passed on, as the kernel delivers a dead process's sent data: their
// sockets reach EOF once that data is read, so the copies end by
// themselves; wait bounds it for a peer outside that does not read.
type drain struct{ wg sync.WaitGroup }
