package sandbox

import (
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A booted init whose copy of the mount table is out of date (a mount
// made or removed since it booted) is discarded, not handed over; one with
// the same table is.
func TestWarmPoolMounts(t *testing.T) {
	mounts := []byte("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n")
	saved := hostCopy
	hostCopy = func() ([]byte, error) { return mounts, nil }
	defer func() { hostCopy = saved }()

	booted := func() (*bootedInit, int) {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); unix.Close(fds[1]) })
		return &bootedInit{cmd: cmd, sock: fds[0], at: time.Now(), context: "ctx", host: append([]byte{}, mounts...)}, fds[1]
	}

	b, _ := booted()
	wp := &WarmPool{ready: b}
	if sock, pidfd, reason := wp.Take("ctx"); sock < 0 || pidfd < 0 {
		t.Fatalf("same mounts: not handed over (%s)", reason)
	} else {
		unix.Close(sock)
		unix.Close(pidfd)
	}

	b, _ = booted()
	wp = &WarmPool{ready: b}
	mounts = append(mounts, "2 1 0:5 / /media/usb rw - vfat /dev/sdb1 rw\n"...)
	sock, _, reason := wp.Take("ctx")
	if sock >= 0 || reason != "the host's mounts or names changed since it booted" {
		t.Fatalf("changed mounts: sock %d, reason %q", sock, reason)
	}
	if b.cmd.ProcessState == nil {
		t.Error("the stale init was not discarded")
	}
}
