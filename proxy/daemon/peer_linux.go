package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/sandbox"
)

// nsKinds are the namespaces a control peer must share with the daemon: a
// process in a sandbox differs in all three.
var nsKinds = []string{"ns/user", "ns/net", "ns/mnt"}

// placeKinds are what a sandbox init inherits at clone besides its
// process attributes: every namespace and the root directory. A client
// handed a warm init must share all of them with the daemon that cloned it
// (a chrooted client would otherwise get a sandbox of the daemon's /, red
// team review of the warm init, F1).
var placeKinds = []string{"ns/user", "ns/mnt", "ns/net", "ns/pid", "ns/pid_for_children", "ns/ipc", "ns/uts",
	"ns/cgroup", "ns/time", "ns/time_for_children", "root"}

type nsID struct{ dev, ino uint64 }

// placesOf stats /proc/PID/KIND for each of kinds: the identities of
// those it could stat, and why not for the others.
func placesOf(pid string, kinds []string) (map[string]nsID, map[string]error) {
	ids, errs := map[string]nsID{}, map[string]error{}
	for _, k := range kinds {
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+pid+"/"+k, &st); err != nil {
			errs[k] = err
			continue
		}
		ids[k] = nsID{uint64(st.Dev), st.Ino}
	}
	return ids, errs
}

// selfNamespaces are the daemon's own placeKinds, read once when it
// starts (it changes neither its namespaces nor its root); a namespace
// kind this kernel does not have is left out.
func selfNamespaces() (map[string]nsID, error) {
	ids, errs := placesOf("self", placeKinds)
	for k, err := range errs {
		if !errors.Is(err, unix.ENOENT) || slices.Contains(nsKinds, k) {
			return nil, fmt.Errorf("%s of the daemon: %w", k, err)
		}
	}
	return ids, nil
}

// peer is what the kernel says about the other end of a control connection.
type peer struct {
	pid   int
	start uint64 // process start time, to recognise the same process later
	// places are its placeKinds as read at connect time, and why some
	// could not be read: what samePlace compares.
	places    map[string]nsID
	placeErrs map[string]error
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
	// Every kind a warm init would need is read now, once: samePlace
	// compares them if the peer asks for one.
	ns, errs := placesOf(strconv.Itoa(pid), placeKinds)
	for _, k := range nsKinds {
		if err := errs[k]; err != nil {
			return peer{}, fmt.Errorf("%s of peer pid %d: %w", k, pid, err)
		}
		if ns[k] != self[k] {
			return peer{}, fmt.Errorf("peer pid %d is in another %s namespace (inside a sandbox?)", pid, strings.TrimPrefix(k, "ns/"))
		}
	}
	start, err := procStart(pid)
	if err != nil {
		return peer{}, err
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return peer{}, fmt.Errorf("peer pid %d exited during the check", pid)
	}
	return peer{pid: pid, start: start, places: ns, placeErrs: errs}, nil
}

// samePlace checks that the peer p is where the daemon (self:
// [selfNamespaces]) is: the same namespaces of every kind and the same
// root, as checkPeer read them from kernel state while it held the peer
// pinned by a pidfd (reading them again for the handover cost 0.2 ms of
// the client's wait). A peer that moves afterwards (unshare, chroot) only
// gets a sandbox of the place it had when it connected.
func samePlace(p peer, self map[string]nsID) error {
	if p.pid <= 0 || p.places == nil {
		return errors.New("peer pid unknown")
	}
	for _, k := range placeKinds {
		mine, ok := self[k]
		if !ok && errors.Is(p.placeErrs[k], unix.ENOENT) {
			continue // a namespace kind this kernel does not have
		}
		if !ok || p.placeErrs[k] != nil {
			return fmt.Errorf("compare %s with peer pid %d: %v", k, p.pid, p.placeErrs[k])
		}
		if p.places[k] != mine {
			return fmt.Errorf("peer pid %d has another %s than the daemon", p.pid, strings.TrimPrefix(k, "ns/"))
		}
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

// waitExit waits until the process p has exited, or limit has passed.
func waitExit(p peer, limit time.Duration) {
	if p.pid <= 0 {
		return
	}
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return // gone already
	}
	defer unix.Close(fd)
	if st, err := procStart(p.pid); err != nil || st != p.start {
		return // another process has the pid now
	}
	// A pidfd polls readable once its process has exited.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(limit); ; {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if n > 0 || (err != nil && err != unix.EINTR) {
			return
		}
	}
}
