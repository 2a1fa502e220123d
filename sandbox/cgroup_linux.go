package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A warm init lives in the daemon's cgroup; the command must run in the
// client's, as it would with an init the client cloned (resource limits,
// accounting, and what systemd stops with a terminal's scope all follow the
// cgroup). With cgroup v2 the client moves the taken init into its own
// cgroup before anything runs in it: on a systemd desktop every terminal is
// a scope of its own, delegated to the user, so the daemon's and a client's
// cgroups differ but the user may move processes between them. The v1
// hierarchies cannot be fixed that way and stay part of InitContext.

// cgroupV1Lines are the cgroup v1 lines of /proc/self/cgroup ("N:controllers:path",
// N > 0), for InitContext.
func cgroupV1Lines(content []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(bytes.TrimSpace(content), []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("0::")) {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

// cgroupV2Path is the cgroup v2 path of pid ("self" or a number), "" when
// it has none.
func cgroupV2Path(pid string) (string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", nil
}

// cgroupV2Mount is where the cgroup v2 hierarchy is mounted with its root
// at "/", from /proc/self/mountinfo; read once per process (a long table
// takes a while to parse, and the daemon asks at every handover). Should
// it move meanwhile, a move into the stale path fails, or is found not to
// have happened (joinCgroup), and the client clones its own init.
var cgroupV2Mount = sync.OnceValues(func() (string, error) {
	entries, _ := readMountinfo("self")
	for _, e := range entries {
		if e.FSType == "cgroup2" && e.Root == "/" {
			return unescapeMountinfo(e.Point), nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy mounted")
})

// fixedCgroup returns the cgroup v2 path of pid (a client of the daemon,
// of the same user) when that user may not move a process into it (its
// cgroup.procs not writable: a root-owned cgroup such as an ssh session's
// scope), "" when it may or there is no cgroup v2. The daemon hands such a
// client a warm init only when the init is already in that cgroup. (Read
// by the daemon, off the client's path; the client's own joinCgroup checks
// where the init ended up.)
func fixedCgroup(pid int) string {
	mine, err := cgroupV2Path(strconv.Itoa(pid))
	if err != nil || mine == "" {
		return ""
	}
	mnt, err := cgroupV2Mount()
	if err != nil {
		return ""
	}
	if unix.Access(filepath.Join(mnt, mine, "cgroup.procs"), unix.W_OK) == nil {
		return ""
	}
	return mine
}

// joinCgroup moves the process of pidfd into this process's cgroup v2 when
// it is elsewhere, and checks that it got there.
func joinCgroup(pidfd int) error {
	mine, err := cgroupV2Path("self")
	if err != nil || mine == "" {
		return err // no cgroup v2: nothing differs there
	}
	pid, err := PidOfPidfd(pidfd)
	if err != nil {
		return err
	}
	theirs, err := cgroupV2Path(strconv.Itoa(pid))
	if err != nil {
		return err
	}
	if theirs == mine {
		return nil
	}
	mnt, err := cgroupV2Mount()
	if err != nil {
		return err
	}
	// The pidfd pins the process: checked alive before the write and
	// after it, so that a pid reused in between (the init died and was
	// reaped within microseconds) is detected; that other process, the
	// user's own, would have moved between the user's own cgroups.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return fmt.Errorf("the sandbox init is gone: %w", err)
	}
	procs := filepath.Join(mnt, mine, "cgroup.procs")
	if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("move it into this cgroup (%s): %w", mine, err)
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return fmt.Errorf("the sandbox init is gone: %w", err)
	}
	if now, err := cgroupV2Path(strconv.Itoa(pid)); err != nil || now != mine {
		return fmt.Errorf("it is in %q, not in this cgroup %q", now, mine)
	}
	return nil
}

// PidOfPidfd reads the pid (in this process's pid namespace) a pidfd refers
// to: from the kernel's PIDFD_GET_INFO (Linux 6.13+; reading the pidfd's
// /proc/self/fdinfo took 0.18 ms of the daemon's answer to each client),
// else from the fdinfo. A process that has exited has none.
func PidOfPidfd(fd int) (int, error) {
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_PID}
	switch err := unix.IoctlPidfdInfo(fd, &info); {
	case err == nil && info.Mask&unix.PIDFD_INFO_PID != 0 && info.Pid > 0:
		return int(info.Pid), nil
	case err == nil, err == unix.ESRCH:
		return 0, fmt.Errorf("pidfd %d: no live pid", fd)
	}
	return pidOfPidfdInfo(fd)
}

// pidOfPidfdInfo is PidOfPidfd for kernels without PIDFD_GET_INFO.
func pidOfPidfdInfo(fd int) (int, error) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			p, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || p <= 0 {
				return 0, fmt.Errorf("pidfd %d: no live pid", fd)
			}
			return p, nil
		}
	}
	return 0, fmt.Errorf("pidfd %d: no Pid in fdinfo", fd)
}
