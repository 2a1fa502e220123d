package sandbox

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock is used through its three syscalls directly rather than through
// go-landlock: go-landlock applies landlock_restrict_self through libpsx,
// which is not in this module's go.sum, and the init needs the same
// all-threads behaviour for its capability and securebits calls anyway
// (syscall.AllThreadsSyscall, which requires CGO_ENABLED=0).

// Landlock access rights (include/uapi/linux/landlock.h).
const (
	llFSExecute    = 1 << 0
	llFSWriteFile  = 1 << 1
	llFSReadFile   = 1 << 2
	llFSReadDir    = 1 << 3
	llFSRemoveDir  = 1 << 4
	llFSRemoveFile = 1 << 5
	llFSMakeChar   = 1 << 6
	llFSMakeDir    = 1 << 7
	llFSMakeReg    = 1 << 8
	llFSMakeSock   = 1 << 9
	llFSMakeFifo   = 1 << 10
	llFSMakeBlock  = 1 << 11
	llFSMakeSym    = 1 << 12
	llFSRefer      = 1 << 13 // ABI 2
	llFSTruncate   = 1 << 14 // ABI 3

	llNetBindTCP = 1 << 0 // ABI 4

	llScopeAbstractUnix = 1 << 0 // ABI 6
	llScopeSignal       = 1 << 1 // ABI 6

	llCreateRulesetVersion = 1 << 0
)

// llFileWrite are the write rights that apply to a file; the others only
// apply to directories (a rule with them on a file is EINVAL).
const llFileWrite = llFSWriteFile | llFSTruncate

type llRulesetAttr struct {
	handledFS  uint64
	handledNet uint64
	scoped     uint64
}

type llPathBeneath struct {
	allowed  uint64
	parentFD int32
}

type llNetPort struct {
	allowed uint64
	port    uint64
}

// landlockABI returns the kernel's Landlock ABI version, 0 without Landlock.
func landlockABI() int {
	r, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, llCreateRulesetVersion)
	if e != 0 {
		return 0
	}
	return int(r)
}

// landlockRule is one writable hierarchy (or file).
type landlockRule struct {
	Path string
	File bool
}

// landlockPlan is what the init asks Landlock for.
type landlockPlan struct {
	Writable []landlockRule
	// RestrictBind handles TCP bind; only BindPorts may then be bound.
	RestrictBind bool
	BindPorts    []int
}

// landlockResult records what the kernel could enforce.
type landlockResult struct {
	ABI       int
	Downgrade []string // features the kernel lacked, for -d and notices
}

// landlockStackFull is why landlock_restrict_self fails with E2BIG where
// the kernel has Landlock (the init's refusal and fence doctor say it).
const landlockStackFull = "whatever started fence already stacks the most Landlock domains the kernel allows (16): run fence from outside that sandbox"

// landlockRuleset makes the ruleset of plan, with what the kernel can
// enforce of it; the caller restricts itself with it (applyLandlock).
func landlockRuleset(plan landlockPlan) (int, landlockResult, error) {
	res := landlockResult{ABI: landlockABI()}
	if res.ABI < 1 {
		return -1, res, fmt.Errorf("landlock is not available")
	}
	handled := uint64(llFSWriteFile | llFSRemoveDir | llFSRemoveFile | llFSMakeChar | llFSMakeDir |
		llFSMakeReg | llFSMakeSock | llFSMakeFifo | llFSMakeBlock | llFSMakeSym)
	if res.ABI >= 2 {
		handled |= llFSRefer
	} else {
		res.Downgrade = append(res.Downgrade, "landlock: cross-directory rename/link not restricted (ABI < 2)")
	}
	if res.ABI >= 3 {
		handled |= llFSTruncate
	} else {
		res.Downgrade = append(res.Downgrade, "landlock: truncate not restricted (ABI < 3)")
	}
	attr := llRulesetAttr{handledFS: handled}
	if plan.RestrictBind {
		if res.ABI >= 4 {
			attr.handledNet = llNetBindTCP
		} else {
			res.Downgrade = append(res.Downgrade, "landlock: TCP bind not restricted (ABI < 4)")
		}
	}
	if res.ABI >= 6 {
		attr.scoped = llScopeAbstractUnix | llScopeSignal
	} else {
		res.Downgrade = append(res.Downgrade, "landlock: signal and abstract socket scoping unavailable (ABI < 6)")
	}
	size := unsafe.Sizeof(attr)
	if res.ABI < 4 {
		size = 8
	} else if res.ABI < 6 {
		size = 16
	}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if e != 0 {
		return -1, res, fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	rfd := int(fd)
	ok := false
	defer func() {
		if !ok {
			unix.Close(rfd)
		}
	}()
	for _, r := range plan.Writable {
		pfd, err := unix.Open(r.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			if err == unix.ENOENT {
				continue
			}
			return -1, res, fmt.Errorf("landlock: open %q: %w", r.Path, err)
		}
		allowed := handled
		if r.File {
			allowed &= llFileWrite
		}
		pb := llPathBeneath{allowed: allowed, parentFD: int32(pfd)}
		_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rfd), unix.LANDLOCK_RULE_PATH_BENEATH,
			uintptr(unsafe.Pointer(&pb)), 0, 0, 0)
		unix.Close(pfd)
		if e != 0 {
			return -1, res, fmt.Errorf("landlock_add_rule %q: %w", r.Path, e)
		}
	}
	if attr.handledNet != 0 {
		for _, port := range plan.BindPorts {
			np := llNetPort{allowed: llNetBindTCP, port: uint64(port)}
			_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rfd), 2, /* LANDLOCK_RULE_NET_PORT */
				uintptr(unsafe.Pointer(&np)), 0, 0, 0)
			if e != 0 {
				return -1, res, fmt.Errorf("landlock_add_rule port %d: %w", port, e)
			}
		}
	}
	ok = true
	return rfd, res, nil
}

// applyLandlock restricts every thread of the process: writes only beneath
// plan.Writable, TCP binds only to plan.BindPorts when RestrictBind, and on
// ABI >= 6 no signals or abstract unix connections out of the domain.
// no_new_privs must be set already.
// It returns the ruleset fd so that the rest of the process can be
// restricted the same way later ([restrictAllThreads]); -1 on error.
func applyLandlock(plan landlockPlan) (int, landlockResult, error) {
	rfd, res, err := landlockRuleset(plan)
	if err != nil {
		return -1, res, err
	}
	// Every thread of the init joins the same domain as the command:
	// Landlock's signal scoping only lets a domain signal itself and its
	// descendants, and the init must keep forwarding signals.
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(rfd), 0, 0); e != 0 {
		unix.Close(rfd)
		return -1, res, fmt.Errorf("landlock_restrict_self: %w", e)
	}
	return rfd, res, nil
}
