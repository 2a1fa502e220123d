package sandbox

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// PidOfPidfd gives a live process's pid, the same from the kernel's
// PIDFD_GET_INFO as from the pidfd's fdinfo, and none once it has exited
// and been reaped.
func TestPidOfPidfd(t *testing.T) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for name, get := range map[string]func(int) (int, error){"PidOfPidfd": PidOfPidfd, "fdinfo": pidOfPidfdInfo} {
		if pid, err := get(fd); err != nil || pid != os.Getpid() {
			t.Errorf("%s of this process: %d, %v; want %d", name, pid, err, os.Getpid())
		}
	}

	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(child)
	cmd.Wait()
	for name, get := range map[string]func(int) (int, error){"PidOfPidfd": PidOfPidfd, "fdinfo": pidOfPidfdInfo} {
		if pid, err := get(child); err == nil {
			t.Errorf("%s of a reaped child: %d, want an error", name, pid)
		}
	}
}
