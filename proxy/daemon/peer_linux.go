package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/sandbox"
)

// nsKinds are the namespaces a control peer must share with the daemon: a
// process in a sandbox differs in all three.
var nsKinds = []string{"user", "net", "mnt"}

type nsID struct{ dev, ino uint64 }

func selfNamespaces() (map[string]nsID, error) {
	return namespacesOf("self")
}

func namespacesOf(pid string) (map[string]nsID, error) {
	m := map[string]nsID{}
	for _, k := range nsKinds {
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+pid+"/ns/"+k, &st); err != nil {
			return nil, fmt.Errorf("namespace %s of %s: %w", k, pid, err)
		}
		m[k] = nsID{uint64(st.Dev), st.Ino}
	}
	return m, nil
}

// peer is what the kernel says about the other end of a control connection.
type peer struct {
	pid   int
	start uint64 // process start time, to recognise the same process later
}

// checkPeer decides from kernel state alone whether the process at the
// other end of c may use the control socket: same uid, and the same user,
// network and mount namespaces as the daemon. The peer is pinned with a
// pidfd taken by the kernel at connect time (SO_PEERPIDFD; pidfd_open of
// the SO_PEERCRED pid on older kernels), and the pidfd is checked to be
// still alive after the namespaces were read, so a recycled pid cannot
// stand in for an exited sandboxed peer.
func checkPeer(c net.Conn, self map[string]nsID) (peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{}, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var cred *unix.Ucred
	pidfd := -1
	var credErr error
	raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr == nil {
			if pfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
				pidfd = pfd
			}
		}
	})
	if credErr != nil {
		return peer{}, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	if int(cred.Uid) != os.Geteuid() {
		return peer{}, fmt.Errorf("peer uid %d is not the daemon's", cred.Uid)
	}
	if cred.Pid <= 0 {
		return peer{}, errors.New("peer pid unknown (peer in another pid namespace)")
	}
	if pidfd < 0 {
		pidfd, err = unix.PidfdOpen(int(cred.Pid), 0)
		if err != nil {
			return peer{}, fmt.Errorf("pidfd_open %d: %w", cred.Pid, err)
		}
	}
	defer unix.Close(pidfd)
	pid := int(cred.Pid)
	if p, err := sandbox.PidOfPidfd(pidfd); err == nil {
		pid = p
	}
	ns, err := namespacesOf(strconv.Itoa(pid))
	if err != nil {
		return peer{}, err
	}
	for _, k := range nsKinds {
		if ns[k] != self[k] {
			return peer{}, fmt.Errorf("peer pid %d is in another %s namespace (inside a sandbox?)", pid, k)
		}
	}
	start, err := procStart(pid)
	if err != nil {
		return peer{}, err
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return peer{}, fmt.Errorf("peer pid %d exited during the check", pid)
	}
	return peer{pid: pid, start: start}, nil
}

// placeKinds are what a sandbox init inherits at clone besides its
// process attributes: every namespace and the root directory. A client
// handed a warm init must share all of them with the daemon that cloned it
// (a chrooted client would otherwise get a sandbox of the daemon's /, red
// team review of the warm init, F1).
var placeKinds = []string{"ns/user", "ns/mnt", "ns/net", "ns/pid", "ns/pid_for_children", "ns/ipc", "ns/uts",
	"ns/cgroup", "ns/time", "ns/time_for_children", "root"}

// place is one of the daemon's placeKinds.
type place struct {
	id  nsID
	err error
}

// selfPlace is the daemon's own placeKinds, read once: it neither changes
// namespaces nor its root.
var selfPlace = sync.OnceValue(func() []place {
	out := make([]place, len(placeKinds))
	for i, k := range placeKinds {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/"+k, &st); err != nil {
			out[i].err = err
			continue
		}
		out[i].id = nsID{uint64(st.Dev), st.Ino}
	}
	return out
})

// samePlace checks, from kernel state, that the peer p is where the daemon
// is: the same namespaces of every kind and the same root directory. It
// pins p with a pidfd and its start time, so a recycled pid cannot pass.
func samePlace(p peer) error {
	if p.pid <= 0 {
		return errors.New("peer pid unknown")
	}
	pidfd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", p.pid, err)
	}
	defer unix.Close(pidfd)
	if start, err := procStart(p.pid); err != nil || start != p.start {
		return fmt.Errorf("peer pid %d is gone", p.pid)
	}
	pid := strconv.Itoa(p.pid)
	self := selfPlace()
	for i, k := range placeKinds {
		var peer unix.Stat_t
		peerErr := unix.Stat("/proc/"+pid+"/"+k, &peer)
		if errors.Is(self[i].err, unix.ENOENT) && errors.Is(peerErr, unix.ENOENT) {
			continue // a namespace kind this kernel does not have
		}
		if self[i].err != nil || peerErr != nil {
			return fmt.Errorf("compare %s with peer pid %d: %v / %v", k, p.pid, self[i].err, peerErr)
		}
		if self[i].id != (nsID{uint64(peer.Dev), peer.Ino}) {
			return fmt.Errorf("peer pid %d has another %s than the daemon", p.pid, strings.TrimPrefix(k, "ns/"))
		}
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return fmt.Errorf("peer pid %d exited during the check", p.pid)
	}
	return nil
}

// procStart returns the start time of pid (field 22 of /proc/PID/stat).
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// alive reports whether the process p still runs (the same process: its
// start time must match).
func alive(p peer) bool {
	if p.pid <= 0 {
		return false
	}
	st, err := procStart(p.pid)
	return err == nil && st == p.start
}
