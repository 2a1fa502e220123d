package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Inside reports whether this process runs inside a fence sandbox. It looks
// at kernel state the sandboxed process cannot change: the sandbox's /dev
// is a tmpfs named fence-sandbox, and a sandboxed process can neither
// unmount it nor mount anything (no capabilities, seccomp). Environment
// variables play no part (ATTACKS.md C-06).
func Inside() bool {
	entries, _ := readMountinfo("self")
	for _, e := range entries {
		if e.Point == "/dev" && e.FSType == "tmpfs" && e.Source == markerSource {
			return true
		}
	}
	return false
}

// Diagnose lists what `fence doctor` checks.
func Diagnose() []Check {
	var out []Check
	out = append(out, checkUserns())
	abi := landlockABI()
	ll := Check{Name: "landlock", Required: true, OK: abi >= 1}
	switch {
	case abi >= 6:
		ll.Detail = fmt.Sprintf("ABI %d: writes, TCP bind, signal and abstract socket scoping", abi)
	case abi >= 4:
		ll.Detail = fmt.Sprintf("ABI %d: writes and TCP bind (no signal/abstract socket scoping before ABI 6)", abi)
	case abi >= 1:
		ll.Detail = fmt.Sprintf("ABI %d: writes only (no TCP bind rule before ABI 4)", abi)
	default:
		ll.Detail = "not available"
		ll.Fix = `needs Linux 5.13+ built with CONFIG_SECURITY_LANDLOCK and "landlock" in the lsm= boot parameter (check /sys/kernel/security/lsm); or accept the weaker mode with [sandbox] allowDegraded = ["landlock"] in ~/.config/fence/config.toml`
	}
	if ll.OK {
		// The kernel has it; whether fence can add a domain here
		// depends on what started it (ATTACKS.md K-10).
		err := onThrowawayThread(func() error {
			if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
				return err
			}
			fd, _, err := landlockRuleset(landlockPlan{})
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			// This thread only: applyLandlock would restrict them all.
			if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(fd), 0, 0); e != 0 {
				return fmt.Errorf("landlock_restrict_self: %w", e)
			}
			return nil
		})
		if err != nil {
			ll.OK = false
			ll.Detail += "; but fence cannot add its domain here: " + err.Error()
			ll.Fix = `accept the weaker mode with [sandbox] allowDegraded = ["landlock"] in ~/.config/fence/config.toml`
			if errors.Is(err, unix.E2BIG) {
				ll.Fix = landlockStackFull + "; or " + ll.Fix
			}
		}
	}
	out = append(out, ll)
	sc := Check{Name: "seccomp", Required: true}
	if _, err := seccompBaseInstructions(); err != nil {
		sc.Detail = err.Error()
		sc.Fix = "fence's seccomp filter is written for amd64 and arm64"
	} else if r, _, e := unix.Syscall(unix.SYS_PRCTL, unix.PR_GET_SECCOMP, 0, 0); e != 0 {
		sc.Detail = "not available: " + e.Error()
		sc.Fix = `needs a kernel with CONFIG_SECCOMP_FILTER; or accept the weaker mode with [sandbox] allowDegraded = ["seccomp"]`
	} else if err := onThrowawayThread(installBothSeccompParts); err != nil {
		// Both of fence's parts, as the init would add them to what it
		// inherits (ATTACKS.md K-10).
		sc.Detail = "fence cannot add its filter here: " + err.Error()
		sc.Fix = `accept the weaker mode with [sandbox] allowDegraded = ["seccomp"] in ~/.config/fence/config.toml`
		if errors.Is(err, unix.ENOMEM) {
			sc.Fix = seccompBudgetUsed + "; or " + sc.Fix
		}
	} else {
		sc.OK = true
		sc.Detail = "filter mode available"
		if r == 2 {
			sc.Detail += " (this process already runs under a filter)"
		}
	}
	out = append(out, sc)
	tiocsti := Check{Name: "dev.tty.legacy_tiocsti", OK: true}
	if b, err := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti"); err == nil {
		if strings.TrimSpace(string(b)) == "1" {
			tiocsti.Detail = "1: TIOCSTI enabled system-wide (fence blocks it inside its sandboxes with seccomp)"
			tiocsti.Fix = "for defence in depth outside fence too: sysctl -w dev.tty.legacy_tiocsti=0 (persist in /etc/sysctl.d/)"
		} else {
			tiocsti.Detail = "0: TIOCSTI disabled system-wide"
		}
	} else {
		tiocsti.Detail = "not present (kernel before 6.2; fence blocks TIOCSTI with seccomp)"
	}
	out = append(out, tiocsti)
	out = append(out, checkContainer())
	cgo := Check{Name: "static build", Required: true, OK: checkAllThreads() == nil}
	if cgo.OK {
		cgo.Detail = "CGO_ENABLED=0: restrictions apply to every thread"
	} else {
		cgo.Detail = errCgo.Error()
		cgo.Fix = "rebuild with CGO_ENABLED=0"
	}
	out = append(out, cgo)
	if Inside() {
		out = append(out, Check{Name: "inside a fence sandbox", OK: false, Detail: "yes: this process is sandboxed; a nested sandbox cannot be created here"})
	}
	return out
}

// onThrowawayThread runs f on an OS thread of its own that exits after it:
// what f restricts (Landlock, seccomp without TSYNC, no_new_privs: all per
// thread) goes with it, and the rest of the process keeps running as it was.
func onThrowawayThread(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: a goroutine that exits locked takes its
		// thread with it.
		done <- f()
	}()
	return <-done
}

// installBothSeccompParts installs fence's two seccomp parts on the calling
// thread only, no_new_privs first: the late part without the TSYNC of
// installSeccompLate, which would put it on every thread.
func installBothSeccompParts() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	if err := installSeccompBase(); err != nil {
		return err
	}
	late, err := seccompLateInstructions(seccompOptions{DenyMPTCP: true})
	if err != nil {
		return err
	}
	return installFilter(late, 0)
}

// checkUserns tries the real thing: a child in new user, mount, pid and
// network namespaces.
func checkUserns() Check {
	c := Check{Name: "user namespaces", Required: true}
	cmd := exec.Command("/proc/self/exe", "--version-probe-userns")
	cmd.Path = "/bin/true"
	if _, err := os.Stat(cmd.Path); err != nil {
		cmd.Path = "/usr/bin/true"
	}
	cmd.Args = []string{"true"}
	uid, gid := os.Getuid(), os.Getgid()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
	}
	err := cmd.Run()
	if err == nil {
		c.OK = true
		c.Detail = "unprivileged user, mount, pid, network, ipc and uts namespaces work"
		return c
	}
	c.Detail = "cannot create them: " + err.Error()
	var hints []string
	if b, err := os.ReadFile("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); err == nil && strings.TrimSpace(string(b)) == "1" {
		exe, _ := os.Executable()
		hints = append(hints, fmt.Sprintf("AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+). Allow them for fence only with a profile: "+
			"printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile fence %s flags=(unconfined) {\\n  userns,\\n}\\n' | sudo tee /etc/apparmor.d/fence && sudo apparmor_parser -r /etc/apparmor.d/fence", exe))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
		hints = append(hints, "sudo sysctl -w kernel.unprivileged_userns_clone=1")
	}
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		hints = append(hints, "sudo sysctl -w user.max_user_namespaces=15000")
	}
	if Inside() {
		hints = append(hints, "this process is inside a fence sandbox, which forbids nested namespaces")
	}
	if len(hints) == 0 {
		hints = append(hints, "check kernel.unprivileged_userns_clone, user.max_user_namespaces and any LSM policy; inside a container, allow unshare/clone of user namespaces (seccomp profile)")
	}
	c.Fix = strings.Join(hints, "; ")
	return c
}

// checkContainer reports whether fence itself runs in a container.
func checkContainer() Check {
	c := Check{Name: "container", OK: true, Detail: "not in a container"}
	what := ""
	if _, err := os.Stat("/.dockerenv"); err == nil {
		what = "docker"
	} else if _, err := os.Stat("/run/.containerenv"); err == nil {
		what = "podman"
	} else if b, err := os.ReadFile("/proc/1/environ"); err == nil && strings.Contains(string(b), "container=") {
		for _, kv := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(kv, "container="); ok {
				what = v
			}
		}
	}
	if what != "" {
		c.Detail = "running in a container (" + what + "): user namespaces and a fresh /proc may be refused by its seccomp profile or masked /proc"
		c.Fix = "run the container with a seccomp profile that allows user namespaces and an unmasked /proc (e.g. --security-opt seccomp=unconfined --security-opt systempaths=unconfined)"
	}
	return c
}

// debugPlan explains the client's half of the plan (-d).
func debugPlan(w io.Writer, pl *plan) {
	p := func(format string, args ...any) {
		fmt.Fprintf(w, "fence: debug: %s\n", sanitizeLine(fmt.Sprintf(format, args...)))
	}
	for _, n := range pl.notes {
		p("%s", n)
	}
	for _, x := range pl.watches {
		p("watch: %s must not appear (%s: %s); created ones are quarantined", filepath.Join(x.Dir, x.Name), x.Reason, x.Protected)
	}
}
