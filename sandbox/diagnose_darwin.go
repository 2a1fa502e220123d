package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Inside reports whether this process runs inside a fence sandbox. Every
// fence profile denies reading [SeatbeltProbe], which exists and is
// readable on every Mac outside a fence sandbox, so the answer comes from
// the kernel's policy, not from anything the sandboxed process can set
// (environment variables play no part). Other sandboxes do not count.
func Inside() bool {
	_, err := os.Lstat(SeatbeltProbe)
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)
}

// Diagnose lists what `fence doctor` checks on macOS.
func Diagnose() []Check {
	var out []Check

	ver := Check{Name: "macOS", OK: true}
	v, err := unix.Sysctl("kern.osproductversion")
	switch {
	case err != nil:
		ver.Detail = "version unknown: " + err.Error()
	default:
		ver.Detail = "macOS " + v
		if major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0]); major > 0 && major < 11 {
			ver.OK = false
			ver.Detail += ": older than fence is written for"
			ver.Fix = "fence's Seatbelt profile is written for macOS 11 or later"
		}
	}
	out = append(out, ver)

	se := Check{Name: "sandbox-exec", Required: true}
	if fi, err := os.Stat(sandboxExec); err != nil {
		se.Detail = err.Error()
		se.Fix = "fence needs " + sandboxExec + ", which ships with macOS; it cannot work without it"
	} else if fi.Mode()&0o111 == 0 {
		se.Detail = sandboxExec + " is not executable"
	} else {
		se.OK = true
		se.Detail = sandboxExec
	}
	out = append(out, se)

	if se.OK {
		// Applying a profile can still fail, inside another sandbox (an
		// editor's or coding agent's) for one.
		ap := Check{Name: "seatbelt", Required: true}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b, err := exec.CommandContext(ctx, sandboxExec, "-p", "(version 1)(allow default)", "--", "/usr/bin/true").CombinedOutput()
		cancel()
		if err != nil {
			ap.Detail = fmt.Sprintf("cannot apply a profile: %v %s", err, strings.TrimSpace(string(b)))
			ap.Fix = "run fence outside any other sandbox (an editor's or agent's sandboxed terminal)"
		} else {
			ap.OK = true
			ap.Detail = "profiles apply"
		}
		out = append(out, ap)
	}

	in := Check{Name: "fence session", OK: !Inside()}
	if in.OK {
		in.Detail = "not inside a fence sandbox"
	} else {
		in.Detail = "this process runs inside a fence sandbox; macOS cannot start another one inside it"
		in.Fix = "leave the fence session (exit) and run fence from your normal shell"
	}
	out = append(out, in)
	return out
}
