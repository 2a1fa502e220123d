package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A warm init is a sandbox init the daemon clones and boots ahead of
// time, so that a `fence -- CMD` does not wait for a new process to start
// in new namespaces (docs/sandbox.md, "Warm init"). The daemon only keeps
// it and hands it over: the client sends the configuration, the policy and
// the command's stdio to it over the init's socket, exactly as to an init it
// cloned itself, and the daemon never sees them.
//
// An init inherits what a process inherits at clone: the binary, resource
// limits, scheduling (nice, I/O priority, policy), CPU affinity, cgroup,
// LSM label, groups, capabilities. A client takes a warm init only when
// all of that is the same as the daemon's when it booted the init
// (InitContext), except the cgroup v2, which the client makes its own
// (joinCgroup), and never when it runs confined itself (no_new_privs or a
// seccomp filter: an outer sandbox such as another tool's Landlock domain
// would not hold for an init the daemon cloned). Where the client is (its
// namespaces, its root) the daemon checks itself.

// warmMaxAge bounds how long a booted init waits, against staleness not
// foreseen: what is known to go stale (the binary, the process context,
// the mount table, the host name) is checked at every handover.
const warmMaxAge = 30 * time.Minute

// WarmPool keeps one sandbox init booted for the next client. It runs in
// the daemon.
type WarmPool struct {
	reason string // why no client can have one, "" if they can

	mu     sync.Mutex
	ready  *bootedInit
	next   *nextBoot // the boot waiting for its moment or under way
	closed bool
}

// nextBoot is a boot of the next init, waiting for its moment (see
// [WarmPool.Refill]) or under way.
type nextBoot struct {
	start   chan struct{} // closed to begin a waiting boot at once
	started bool          // start is closed (under WarmPool.mu)
	done    chan struct{} // closed once it has ended, an init ready or not
}

// begin starts nb now if it still waits; the caller holds WarmPool.mu.
func (nb *nextBoot) begin() {
	if !nb.started {
		nb.started = true
		close(nb.start)
	}
}

// takeWait bounds how long a client waits for a boot under way, or about
// to begin, rather than cloning its own init: the daemon's part of a boot
// (fork, exec, the mount table's check) takes 1-2 ms, and the client's own
// clone would cost it more than that while it loads its policy anyway.
const takeWait = 20 * time.Millisecond

type bootedInit struct {
	cmd     *exec.Cmd
	sock    int
	at      time.Time
	context string // the daemon's InitContext when it cloned this one
	cgroup  string // its cgroup v2 then
	exe     string // the binary's identity (part of context)
	names   string // the host names it copied (hostNames then)
	// mounts is the host's /proc/self/mountinfo, opened before the init's
	// table was found equal to the host's (verify): the kernel flags it
	// (POLLPRI) at the first change of the host's mounts since, so a
	// handover need not compare the tables again. Only when verified.
	mounts   int
	verified bool
}

// fixedCgroupOf is fixedCgroup; a variable for tests.
var fixedCgroupOf = fixedCgroup

// loseAdopted kills every init Adopt takes (FENCE_TEST_LOSE_WARM_INIT=1 in
// builds with the fence_testhooks tag), to test the fallback to a cloned
// one.
var loseAdopted bool

// mountTable reads the mount table of pid ("self" or a number) with what
// differs between a mount namespace and its copy left out (mount and
// parent ids, peer group tags), in a stable order: the device, root, mount
// point, options, type, source and superblock options of every mount. A
// variable for tests.
var mountTable = func(pid string) ([]byte, error) {
	entries, err := readMountinfo(pid)
	if err != nil {
		return nil, err
	}
	lines := make([]string, len(entries))
	for i, e := range entries {
		lines[i] = strings.Join([]string{e.Dev, e.Root, e.Point, e.Options, "-", e.FSType, e.Source, e.Super}, " ")
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n")), nil
}

// hostNames are the host and domain names, which an init's UTS namespace
// copies when it is cloned (and hostnamectl may change later).
func hostNames() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Nodename[:]) + " " + unix.ByteSliceToString(u.Domainname[:])
}

// current reports whether the init still has what the host has: its mount
// namespace is a copy of the host's from when it was cloned, and where the
// host's mounts do not propagate (a private /) a mount made or removed
// since (a drive, a bind mount) would be missing or still there inside.
// The init's own table is compared, not one read around the clone, which
// a mount made and removed meanwhile would pass. The comparison is made
// once, when the init has booted (verify), off the client's path; a
// handover then only asks the kernel whether the host's mounts changed
// since (the init's copy changes only by propagation from the host's,
// which the host's table shows too), and compares again if they did.
func (b *bootedInit) current() bool {
	if hostNames() != b.names {
		return false
	}
	if b.verified {
		fds := []unix.PollFd{{Fd: int32(b.mounts), Events: unix.POLLPRI}}
		n, err := unix.Poll(fds, 0)
		if err == nil && n == 0 {
			return true
		}
		b.close()
	}
	return b.verify()
}

// verify compares the init's mount table with the host's and, if they are
// equal, keeps the host's mountinfo open to learn of later changes.
func (b *bootedInit) verify() bool {
	fd, err := openMountinfo("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	host, err := mountTable("self")
	if err != nil {
		unix.Close(fd)
		return false
	}
	init, err := mountTable(strconv.Itoa(b.cmd.Process.Pid))
	if err != nil || !bytes.Equal(host, init) {
		unix.Close(fd)
		return false
	}
	b.mounts, b.verified = fd, true
	return true
}

// openMountinfo opens a mountinfo file to poll for changes. Not as an
// os.File: Go's netpoller would register it with epoll, and its polls
// would take the change flag (the kernel reports each change once per
// open file) before ours saw it.
func openMountinfo(path string) (int, error) {
	return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// exeIdentity identifies this process's binary: device, inode, size and
// modification time of /proc/self/exe.
func exeIdentity() (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return "", fmt.Errorf("stat /proc/self/exe: %w", err)
	}
	return fmt.Sprintf("%d:%d:%d:%d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec), nil
}

// ExeIdentity is exeIdentity, "" when it cannot be read: what a client
// sends so that a daemon of another binary (a rebuild, an upgrade) keeps
// its init instead of handing over one the client would not take.
func ExeIdentity() string {
	id, _ := exeIdentity()
	return id
}

// Confined says why this process runs confined by something outside fence
// (no_new_privs, a seccomp filter), which rules a warm init out (see
// InitContext); "" if it does not. Two prctls: cheap enough to ask before
// a request.
func Confined() string {
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil && v != 0 {
		return "this process runs confined (NoNewPrivs 1)"
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err == nil && v != 0 {
		return fmt.Sprintf("this process runs confined (Seccomp %d)", v)
	}
	return ""
}

// ConfinementKind names the confinement Confined sees ("nnp", "seccomp2",
// "nnp-seccomp2"), "" for none. Processes of one kind share a daemon
// (config.RuntimeDir): a daemon inherits the confinement of the fence that
// starts it, and a confined daemon can serve neither a client outside its
// confinement (Landlock hides such a client's /proc entries from it, so it
// cannot even verify it) nor that client's network.
func ConfinementKind() string {
	var kind []string
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err == nil && v != 0 {
		kind = append(kind, "nnp")
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err == nil && v != 0 {
		kind = append(kind, "seccomp"+strconv.Itoa(v))
	}
	return strings.Join(kind, "-")
}

// ContextDiffers is why a client whose process context is not the
// daemon's gets no warm init.
const ContextDiffers = "the client's process context (binary, limits, scheduling, affinity, cgroup, label, groups) differs from the daemon's"

// NewWarmPool returns a pool for the daemon. It boots nothing until
// [WarmPool.Refill].
func NewWarmPool() *WarmPool {
	_, reason := InitContext()
	wp := &WarmPool{reason: reason}
	if reason == "" {
		go wp.watchMounts()
	}
	return wp
}

// Take hands over the booted init to the client of process clientPID, whose
// [InitContext] is clientContext: the client's end of the init's socket,
// a pidfd of the init, and the init's context (the daemon's when it booted
// it). An empty clientContext leaves the comparison to the client, which
// then computes its own while the daemon answers. With none ready it waits
// for one on its way (up to takeWait), or says why there is none (reason).
// It does not boot the next one: see [WarmPool.Refill].
func (wp *WarmPool) Take(clientContext, clientExe string, clientPID int) (sock, pidfd int, initContext, reason string) {
	if wp.reason != "" {
		return -1, -1, "", wp.reason
	}
	clientCgroup := ""
	if clientPID > 0 {
		clientCgroup = fixedCgroupOf(clientPID)
	}
	wp.mu.Lock()
	if nb := wp.next; wp.ready == nil && nb != nil {
		nb.begin()
		wp.mu.Unlock()
		t := time.NewTimer(takeWait)
		select {
		case <-nb.done:
		case <-t.C:
		}
		t.Stop()
		wp.mu.Lock()
	}
	b := wp.ready
	if b != nil && (clientContext != "" && b.context != clientContext || clientExe != "" && b.exe != clientExe) {
		wp.mu.Unlock()
		return -1, -1, "", ContextDiffers
	}
	if b != nil && clientCgroup != "" && clientCgroup != b.cgroup {
		// Left for a client that can use it.
		wp.mu.Unlock()
		return -1, -1, "", "the client cannot move the init into its cgroup " + clientCgroup
	}
	wp.ready = nil
	wp.mu.Unlock()
	if b == nil {
		return -1, -1, "", "none booted yet"
	}
	if time.Since(b.at) > warmMaxAge {
		b.discard()
		return -1, -1, "", "the booted one was too old"
	}
	if !b.current() {
		b.discard()
		return -1, -1, "", "the host's mounts or names changed since it booted"
	}
	fd, err := unix.PidfdOpen(b.cmd.Process.Pid, 0)
	if err == nil {
		// Queued before the client can send anything.
		err = sendMsg(b.sock, &message{Kind: "adopt"})
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		b.discard()
		return -1, -1, "", fmt.Sprintf("hand over: %v", err)
	}
	b.close()
	go b.cmd.Wait() // the daemon is its parent: reap it when it ends
	return b.sock, fd, b.context, ""
}

// Refill boots the next init in the background, unless one is ready or
// on its way; after a pause of after, unless a client asks for one first
// ([WarmPool.Take] then begins it at once). Booting costs the daemon a
// millisecond or two (a full fork, since Go cannot vfork with
// CLONE_NEWUSER, and the new namespaces, the network one above all), and
// the init its start: done while a client waits for an answer, it made the
// answer 1-2.5 ms later; done as a client has just exited, it competed on
// two cores with the wake-up of whatever waited for that exit (a shell,
// a script) and the last sandbox's teardown.
func (wp *WarmPool) Refill(after time.Duration) {
	if wp.reason != "" {
		return
	}
	wp.mu.Lock()
	if wp.closed || wp.ready != nil || wp.next != nil {
		wp.mu.Unlock()
		return
	}
	nb := &nextBoot{start: make(chan struct{}), done: make(chan struct{})}
	wp.next = nb
	wp.mu.Unlock()
	go func() {
		defer close(nb.done)
		if after > 0 {
			t := time.NewTimer(after)
			select {
			case <-t.C:
			case <-nb.start:
			}
			t.Stop()
		}
		wp.mu.Lock()
		closed := wp.closed
		wp.mu.Unlock()
		var b *bootedInit
		if !closed {
			b = bootNext()
		}
		wp.mu.Lock()
		wp.next = nil
		if b != nil && !wp.closed {
			wp.ready, b = b, nil
		}
		wp.mu.Unlock()
		if b != nil {
			b.discard() // the pool closed meanwhile
		}
	}()
}

// bootNext is boot; a variable for tests.
var bootNext = boot

// boot clones and checks the next init; nil if it cannot.
func boot() *bootedInit {
	// Personality flags are per thread and inherited by the clone: a
	// daemon started on demand by a client under `setarch -R` must not
	// hand every later client an init without ASLR. This thread sheds
	// them; a client running with some clones its own init.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Syscall(unix.SYS_PERSONALITY, 0, 0, 0) // PER_LINUX
	// The context the init inherits: read now, on this thread, just
	// before the clone (the daemon's own could change while it runs).
	ctx, why := InitContext()
	if why != "" {
		return nil
	}
	names := hostNames()
	cgroup, _ := cgroupV2Path("self")
	exe := ExeIdentity()
	cmd, sock, err := startInit(nil, nil, nil, true)
	if err != nil {
		return nil
	}
	b := &bootedInit{cmd: cmd, sock: sock, at: time.Now(), context: ctx, names: names, cgroup: cgroup, exe: exe}
	// Compared now, so that the handover need not (see current); a
	// table that already differs is compared again there. Only an init
	// whose table matched stages its root: its own mounts would make the
	// tables differ from then on, so a later change of the host's mounts
	// discards it (current).
	if b.verify() {
		sendMsg(b.sock, &message{Kind: "stage"})
	}
	return b
}

// watchMounts discards the booted init when the mount table changes (the
// kernel signals it on /proc/self/mountinfo with POLLPRI): besides being
// stale, its copy of the mounts would keep a filesystem unmounted since
// (an ejected drive) in use. The next one boots a moment later, after a
// burst of changes.
func (wp *WarmPool) watchMounts() {
	fd, err := openMountinfo("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var refill *time.Timer
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		if fds[0].Revents&(unix.POLLPRI|unix.POLLERR) == 0 {
			continue
		}
		wp.mu.Lock()
		b := wp.ready
		if b != nil {
			if b.current() {
				b = nil // changed and changed back
			} else {
				wp.ready = nil
			}
		}
		closed := wp.closed
		wp.mu.Unlock()
		if b != nil {
			b.discard()
		}
		if closed {
			return
		}
		if refill != nil {
			refill.Stop()
		}
		refill = time.AfterFunc(200*time.Millisecond, func() { wp.Refill(0) })
	}
}

// State is "ready", "booting" or "none", or why the pool cannot have one.
func (wp *WarmPool) State() string {
	if wp.reason != "" {
		return "unavailable: " + wp.reason
	}
	wp.mu.Lock()
	defer wp.mu.Unlock()
	switch {
	case wp.ready != nil:
		return "ready"
	case wp.next != nil:
		return "booting"
	}
	return "none"
}

// Close kills the booted init, if any; the pool boots no more.
func (wp *WarmPool) Close() {
	wp.mu.Lock()
	b := wp.ready
	wp.ready, wp.closed = nil, true
	wp.mu.Unlock()
	if b != nil {
		b.discard()
	}
}

func (b *bootedInit) discard() {
	b.cmd.Process.Kill()
	b.cmd.Wait()
	unix.Close(b.sock)
	b.close()
}

// close releases what the pool kept for b once b leaves it.
func (b *bootedInit) close() {
	if b.verified {
		unix.Close(b.mounts)
		b.verified = false
	}
}

// Adopt makes a Pending of an init handed over by the daemon (the client's
// end of its socket and a pidfd; Adopt owns both). It reads the same parts
// of spec as [Prepare]: the stdio travel with the configuration.
func Adopt(spec *Spec, sock, pidfd int) (*Pending, error) {
	if err := joinCgroup(pidfd); err != nil {
		unix.Close(sock)
		unix.Close(pidfd)
		return nil, fmt.Errorf("the sandbox init is in the daemon's cgroup and cannot join this one: %w", err)
	}
	if loseAdopted {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
	}
	stdin, stdout, stderr := commandStdio(spec)
	var stdio []*os.File
	for _, f := range []*os.File{stdin, stdout, stderr} {
		var d *os.File
		var err error
		if f == nil {
			d, err = os.Open(os.DevNull)
		} else {
			// A copy: the caller may close its file before the
			// configuration is sent.
			d, err = dupFile(f)
		}
		if err != nil {
			for _, o := range stdio {
				o.Close()
			}
			unix.Close(sock)
			unix.Close(pidfd)
			return nil, fmt.Errorf("pass the command's stdio to the sandbox init: %w", err)
		}
		stdio = append(stdio, d)
	}
	init, err := newAdoptedInit(pidfd)
	if err != nil {
		for _, o := range stdio {
			o.Close()
		}
		unix.Close(sock)
		return nil, fmt.Errorf("the sandbox init's pidfd: %w", err)
	}
	return &Pending{init: init, sock: sock, t0: monoNow(), tty: spec.TTY, stdio: stdio, how: "taken warm from the daemon", adopted: true, umask: processUmask()}, nil
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// Warm records, for -d, how long taking the warm init from the daemon took.
func (pd *Pending) Warm(took time.Duration) {
	pd.how = fmt.Sprintf("taken warm from the daemon (in %.2fms)", float64(took.Microseconds())/1000)
}

// Cold records, for -d, why a Pending was cloned by the client rather than
// taken warm from the daemon.
func (pd *Pending) Cold(reason string) {
	if reason != "" {
		pd.how = "cloned (no warm init: " + sanitizeLine(reason) + ")"
	}
}

// InitContext describes what a sandbox init inherits from the process that
// clones it. A client takes a warm init only when its own context equals
// the daemon's. It is "" with a reason when this process may not use warm
// inits at all.
func InitContext() (context, reason string) {
	if why := Confined(); why != "" {
		return "", why
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", fmt.Sprintf("read /proc/self/status: %v", err)
	}
	var b bytes.Buffer
	for _, line := range bytes.Split(status, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch string(k) {
		case "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Cpus_allowed_list", "Mems_allowed_list":
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
	}
	exe, err := exeIdentity()
	if err != nil {
		return "", err.Error()
	}
	fmt.Fprintf(&b, "exe=%s\n", exe)
	for r := 0; r < 16; r++ { // RLIMIT_CPU .. RLIMIT_RTTIME
		var l unix.Rlimit
		if unix.Getrlimit(r, &l) == nil {
			fmt.Fprintf(&b, "rlimit%d=%d:%d\n", r, l.Cur, l.Max)
		}
	}
	if prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		fmt.Fprintf(&b, "priority=%d\n", prio)
	}
	// What nice, ionice, chrt and a few prctls set: a command run as
	// `ionice -c3 fence -- make` must not run with the daemon's.
	const ioprioWhoProcess = 1
	ioprio, _, _ := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, 0, 0)
	policy, _, _ := unix.Syscall(unix.SYS_SCHED_GETSCHEDULER, 0, 0, 0)
	slack, _ := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	secure, _ := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
	thp, _ := unix.PrctlRetInt(unix.PR_GET_THP_DISABLE, 0, 0, 0, 0)
	fmt.Fprintf(&b, "ioprio=%d sched=%d timerslack=%d securebits=%d thp-disable=%d\n", ioprio, policy, slack, secure, thp)
	// Execution domain flags (setarch -R turns ASLR off), memory-deny-
	// write-execute and the speculation mitigations: inherited across
	// clone and exec, and not to be lost or gained through the daemon
	// (red team review of the warm init, F3).
	pers, _, _ := unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	mdwe, _ := unix.PrctlRetInt(unix.PR_GET_MDWE, 0, 0, 0, 0)
	fmt.Fprintf(&b, "personality=%#x mdwe=%d speculation=", pers, mdwe)
	for _, which := range []uintptr{unix.PR_SPEC_STORE_BYPASS, unix.PR_SPEC_INDIRECT_BRANCH, unix.PR_SPEC_L1D_FLUSH} {
		v, _ := unix.PrctlRetInt(unix.PR_GET_SPECULATION_CTRL, which, 0, 0, 0)
		fmt.Fprintf(&b, "%d,", v)
	}
	b.WriteString("\n")
	for _, name := range []string{"cgroup", "oom_score_adj"} {
		v, err := os.ReadFile("/proc/self/" + name)
		if err != nil {
			return "", fmt.Sprintf("read /proc/self/%s: %v", name, err)
		}
		if name == "cgroup" {
			// The v2 cgroup is made to match at the handover (joinCgroup).
			v = cgroupV1Lines(v)
		}
		fmt.Fprintf(&b, "%s=%s\n", name, bytes.TrimSpace(v))
	}
	// The LSM label (an AppArmor profile, an SELinux context) and the
	// audit login session, where the kernel has them.
	for _, name := range []string{"attr/current", "loginuid", "sessionid"} {
		if v, err := os.ReadFile("/proc/self/" + name); err == nil {
			fmt.Fprintf(&b, "%s=%s\n", name, bytes.TrimSpace(v))
		}
	}
	return b.String(), ""
}

// processUmask reads this process's umask without changing it (umask(2)
// sets it, for every thread); -1 when unknown.
func processUmask() int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Umask:")); ok {
			if n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 8, 32); err == nil {
				return int(n)
			}
		}
	}
	return -1
}
