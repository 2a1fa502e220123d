package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// A booted init whose copy of the mount table differs from the host's (a
// mount made or removed since it booted) is discarded, not handed over;
// one with the same table is.
func TestWarmPoolMounts(t *testing.T) {
	host := []byte("8:1 / / rw - ext4 /dev/sda1 rw")
	inits := []byte("8:1 / / rw - ext4 /dev/sda1 rw")
	saved := mountTable
	mountTable = func(pid string) ([]byte, error) {
		if pid == "self" {
			return host, nil
		}
		return inits, nil
	}
	defer func() { mountTable = saved }()

	booted := func() *bootedInit { return standIn(t) }

	wp := &WarmPool{ready: booted()}
	if sock, pidfd, _, reason := wp.Take("ctx", "", 0); sock < 0 || pidfd < 0 {
		t.Fatalf("same mounts: not handed over (%s)", reason)
	} else {
		unix.Close(sock)
		unix.Close(pidfd)
	}

	// A drive mounted on the host since: the init's copy lacks it.
	b := booted()
	wp = &WarmPool{ready: b}
	host = []byte("8:1 / / rw - ext4 /dev/sda1 rw\n8:17 / /media/usb rw - vfat /dev/sdb1 rw")
	sock, _, _, reason := wp.Take("ctx", "", 0)
	if sock >= 0 || reason != "the host's mounts or names changed since it booted" {
		t.Fatalf("changed mounts: sock %d, reason %q", sock, reason)
	}
	if b.cmd.ProcessState == nil {
		t.Error("the stale init was not discarded")
	}
}

// A client that cannot move an init into its cgroup gets one only if it is
// already there; otherwise the init is left for another client.
func TestWarmPoolFixedCgroup(t *testing.T) {
	saved := mountTable
	mountTable = func(string) ([]byte, error) { return []byte("same"), nil }
	defer func() { mountTable = saved }()
	b := standIn(t)
	b.cgroup = "/user.slice/a"
	wp := &WarmPool{ready: b}
	client := map[int]string{1: "/session-2.scope", 2: "/user.slice/a"}
	savedCgroup := fixedCgroupOf
	fixedCgroupOf = func(pid int) string { return client[pid] }
	defer func() { fixedCgroupOf = savedCgroup }()
	if sock, _, _, reason := wp.Take("ctx", "", 1); sock >= 0 || reason == "" {
		t.Fatalf("a client that cannot join got the init (sock %d)", sock)
	}
	if wp.ready == nil {
		t.Fatal("the init was consumed instead of left for another client")
	}
	sock, pidfd, _, reason := wp.Take("ctx", "", 2)
	if sock < 0 {
		t.Fatalf("a client already in the init's cgroup did not get it: %s", reason)
	}
	unix.Close(sock)
	unix.Close(pidfd)
}

// The mount table of a process and of a copy of its mount namespace
// compare equal (ids and peer groups left out): here, this process and a
// child in a new user and mount namespace.
func TestMountTableOfACopy(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("run as an unprivileged user")
	}
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}},
	}
	err := cmd.Start()
	sandboxtest.Require(t, err == nil, fmt.Sprintf("needs unprivileged user namespaces: %v", err))
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	mine, err := mountTable("self")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := mountTable(strconv.Itoa(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if string(mine) != string(theirs) {
		t.Errorf("a fresh copy differs:\n%s\n---\n%s", mine, theirs)
	}
}

// A handover compares the mount tables only when the host's mounts changed
// since the init was verified: the kernel flags the host's mountinfo
// (POLLPRI). Here a process in a mount namespace of its own stands in for
// the host, so that the test can change its mounts.
func TestWarmPoolMountsVerified(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("run as an unprivileged user")
	}
	var compared int
	host := "same"
	saved := mountTable
	mountTable = func(pid string) ([]byte, error) {
		compared++
		if pid == "self" {
			return []byte(host), nil
		}
		return []byte("same"), nil
	}
	defer func() { mountTable = saved }()

	// The stand-in host mounts a tmpfs when told to.
	stand := exec.Command("sh", "-c", "read x; mount -t tmpfs none /mnt && echo mounted; sleep 30")
	stand.SysProcAttr = userMountNS()
	tell, err := stand.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := stand.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	err = stand.Start()
	sandboxtest.Require(t, err == nil, fmt.Sprintf("needs unprivileged user namespaces: %v", err))
	defer func() { stand.Process.Kill(); stand.Wait() }()
	watch := func() int {
		fd, err := openMountinfo(fmt.Sprintf("/proc/%d/mountinfo", stand.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	booted := func() *bootedInit {
		b := standIn(t)
		b.mounts, b.verified = watch(), true
		return b
	}

	// Nothing changed since it was verified: handed over without a
	// comparison.
	wp := &WarmPool{ready: booted()}
	sock, pidfd, _, reason := wp.Take("ctx", "", 0)
	if sock < 0 {
		t.Fatalf("unchanged mounts: not handed over (%s)", reason)
	}
	unix.Close(sock)
	unix.Close(pidfd)
	if compared != 0 {
		t.Fatalf("unchanged mounts: the tables were read %d times", compared)
	}

	// A mount since: compared again, and the stale init discarded.
	b := booted()
	wp = &WarmPool{ready: b}
	tell.Write([]byte("go\n"))
	line := make([]byte, 8)
	if n, _ := out.Read(line); string(line[:n]) != "mounted\n" {
		t.Fatalf("the stand-in host did not mount: %q", line[:n])
	}
	host = "same\n0:99 / /mnt rw - tmpfs none rw"
	sock, _, _, reason = wp.Take("ctx", "", 0)
	if sock >= 0 || reason != "the host's mounts or names changed since it booted" {
		t.Fatalf("changed mounts: sock %d, reason %q", sock, reason)
	}
	if compared == 0 {
		t.Fatal("changed mounts: the tables were not compared")
	}
	if b.cmd.ProcessState == nil {
		t.Error("the stale init was not discarded")
	}
}

// standIn is a booted init for the pool's tests: a sleeping process and
// one end of a socket pair, with context "ctx" and this host's names.
func standIn(t *testing.T) *bootedInit {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); unix.Close(fds[1]) })
	return &bootedInit{cmd: cmd, sock: fds[0], at: time.Now(), context: "ctx", names: hostNames()}
}

// Refill with a pause boots nothing until the pause is over, unless a
// client asks first: Take then begins the boot at once and waits for it,
// instead of answering that there is none. With no boot on its way, Take
// answers at once.
func TestWarmPoolRefillPause(t *testing.T) {
	saved, savedTable := bootNext, mountTable
	defer func() { bootNext, mountTable = saved, savedTable }()
	mountTable = func(string) ([]byte, error) { return []byte("same"), nil }
	boots := make(chan time.Time, 4)
	bootNext = func() *bootedInit {
		boots <- time.Now()
		return standIn(t)
	}

	wp := &WarmPool{}
	if sock, _, _, reason := wp.Take("ctx", "", 0); sock >= 0 || reason != "none booted yet" {
		t.Fatalf("nothing on its way: sock %d, reason %q", sock, reason)
	}

	wp.Refill(time.Hour)
	select {
	case <-boots:
		t.Fatal("booted before the pause was over")
	case <-time.After(50 * time.Millisecond):
	}
	if s := wp.State(); s != "booting" {
		t.Errorf("state during the pause: %q", s)
	}
	asked := time.Now()
	sock, pidfd, _, reason := wp.Take("ctx", "", 0)
	if sock < 0 {
		t.Fatalf("a client asking during the pause got none (%s)", reason)
	}
	unix.Close(sock)
	unix.Close(pidfd)
	if at := <-boots; at.Before(asked) {
		t.Fatal("booted before the client asked")
	}
	if s := wp.State(); s != "none" {
		t.Errorf("state after the handover: %q", s)
	}

	wp.Refill(time.Millisecond)
	select {
	case <-boots:
	case <-time.After(5 * time.Second):
		t.Fatal("no boot after a short pause")
	}
	for wp.State() != "ready" {
		time.Sleep(time.Millisecond)
	}
	wp.Refill(0) // one is ready: nothing more to boot
	select {
	case <-boots:
		t.Fatal("booted a second one while one was ready")
	case <-time.After(20 * time.Millisecond):
	}
	wp.Close()
}

// The init of a command that ended goes a moment after its client let go
// of it (teardownPause), not later: the daemon's children in a pid
// namespace of their own are, soon after each run, only the one booted
// for the next client.
func TestInitsEnd(t *testing.T) {
	e := sandboxtest.New(t, "[filesystem]\nallowWrite = [\".\"]\n")
	e.Init = "warm"
	if r := e.Run("--", "true"); r.Code != 0 {
		t.Fatalf("fence -- true: %d\n%s", r.Code, r.Out())
	}
	var rt string
	for _, v := range e.Vars {
		if s, ok := strings.CutPrefix(v, "XDG_RUNTIME_DIR="); ok {
			rt = s
		}
	}
	b, err := os.ReadFile(filepath.Join(rt, "fence", "daemon.lock"))
	if err != nil {
		t.Fatal(err)
	}
	daemon := strings.TrimSpace(string(b))
	inits := func() []string {
		ours, _ := os.Readlink("/proc/self/ns/pid")
		var out []string
		ents, _ := os.ReadDir("/proc")
		for _, ent := range ents {
			stat, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
			if err != nil {
				continue
			}
			f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
			if len(f) < 2 || f[1] != daemon || f[0] == "Z" {
				continue
			}
			if ns, _ := os.Readlink("/proc/" + ent.Name() + "/ns/pid"); ns != ours {
				out = append(out, ent.Name())
			}
		}
		return out
	}
	for i := 0; i < 3; i++ {
		if r := e.Run("--", "true"); r.Code != 0 {
			t.Fatalf("fence -- true: %d\n%s", r.Code, r.Out())
		}
	}
	// The output's pipes end with fence, not with the init's teardown
	// (teardownPause later): in one of five runs at least, whatever the
	// machine's load.
	var late []time.Duration
	for len(late) < 5 {
		e.WaitWarm()
		cmd := exec.Command(e.Fence, "--", "echo", "hi")
		cmd.Dir, cmd.Env = e.Project, append(e.Vars, "FENCE_WARM_INIT=require")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		read := make(chan []byte)
		go func() { b, _ := io.ReadAll(out); read <- b }()
		state, err := cmd.Process.Wait()
		exited := time.Now()
		if err != nil || !state.Success() {
			t.Fatalf("fence -- echo hi: %v %v\n%s", state, err, <-read)
		}
		b := <-read
		if !strings.HasSuffix(string(b), "hi\n") {
			t.Fatalf("output %q", b)
		}
		d := time.Since(exited)
		if d < teardownPause/3 {
			break
		}
		late = append(late, d)
	}
	if len(late) == 5 {
		t.Errorf("the output pipe ended %v after fence exited (teardownPause %v): the init held it", late, teardownPause)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := inits()
		if len(left) <= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's inits 3 s after the last run: %v (want only the one booted ahead)", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
