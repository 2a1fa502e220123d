#!/usr/bin/env python3
"""Run a command where one of fence's protection layers cannot be installed
(ATTACKS.md K-10), by real kernel conditions, for failclosed_linux_test.go.

    python3 degrade.py MODE -- COMMAND [ARGS...]
    python3 degrade.py probe WHAT [ARG]

MODE sets no_new_privs (which every mode needs, and which makes fence's
client "confined": it clones its own init, which inherits the condition),
then:
  nnp             nothing more (the baseline)
  landlock-one    one Landlock domain of its own (as an agent's sandbox
                  would have), which leaves fence every layer
  landlock-full   stacks Landlock domains up to the kernel's maximum (16),
                  so that one more landlock_restrict_self fails with E2BIG
  seccomp-full    fills the seccomp instruction budget, so that any further
                  filter fails with ENOMEM
  seccomp-room=N  fills it but for room for one more filter of at most N
                  instructions (of the kind this script makes)
  no-userns       a seccomp filter that refuses new user namespaces

probe WHAT tries, in the current process, what fence would, and prints
"probe WHAT: ok" or "probe WHAT: ERRNO": landlock (one more domain),
seccomp N (a filter of N instructions, default 1; printed with N).

Only python3 and ctypes; x86-64 and arm64. Exit status 3: not supported
here; 2: the condition could not be set up (the test must then fail).
"""

import ctypes
import errno
import os
import platform
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# Syscall numbers where x86-64 and arm64 differ; the Landlock ones
# (444-446) and clone3 (435) are the same on both.
ARCHES = {
    "x86_64": {"audit": 0xC000003E, "clone": 56, "unshare": 272, "x32": 0x40000000},
    "aarch64": {"audit": 0xC00000B7, "clone": 220, "unshare": 97, "x32": 0},
}
SYS_CLONE3 = 435
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_RESTRICT_SELF = 446

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
CLONE_NEWUSER = 0x10000000

# The most instructions a classic BPF program may have (BPF_MAXINSNS).
BPF_MAXINSNS = 4096

# Classic BPF opcodes.
LD_W_ABS = 0x20
RET_K = 0x06
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
JA = 0x05
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16  # struct seccomp_data, little-endian


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


class RulesetAttr(ctypes.Structure):
    # handled_access_fs, handled_access_net (ABI 4); scoped (ABI 6) is
    # left out: the size passed says which fields there are.
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64)]


LANDLOCK_ACCESS_NET_CONNECT_TCP = 1 << 1


class SetupError(Exception):
    pass


def die(status, msg):
    print("degrade.py: " + msg, file=sys.stderr)
    sys.exit(status)


def errname(e):
    return errno.errorcode.get(e, str(e))


def arch():
    a = ARCHES.get(platform.machine())
    if a is None:
        die(3, "unsupported architecture %s (x86_64 and aarch64 only)" % platform.machine())
    return a


def no_new_privs():
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SetupError("prctl(PR_SET_NO_NEW_PRIVS): " + errname(ctypes.get_errno()))


def install_filter(insns):
    """Installs a seccomp filter; returns 0 or the errno."""
    prog_insns = (SockFilter * len(insns))(*[SockFilter(*i) for i in insns])
    prog = SockFprog(len(insns), prog_insns)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        return ctypes.get_errno()
    return 0


def allow_all(n):
    """A filter of n instructions that allows everything: a jump over
    n - 2 loads of the syscall number to the return. The kernel's action
    cache sees through it cheaply (it follows the jump): the filter is not
    run for each syscall, and installing it stays fast."""
    if n == 1:
        return [(RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    return [(JA, 0, 0, n - 2)] + [(LD_W_ABS, 0, 0, OFF_NR)] * (n - 2) + [(RET_K, 0, 0, SECCOMP_RET_ALLOW)]


def landlock_domain():
    """Restricts the current thread with a ruleset that handles TCP
    connect only: no filesystem access (a domain that handles any would
    make the kernel refuse fence's mounts before it gets to Landlock), and
    not TCP bind, which the sandbox init uses for its relays. (What runs
    under it cannot connect over TCP, which the tests do not need.)"""
    attr = RulesetAttr(0, LANDLOCK_ACCESS_NET_CONNECT_TCP)
    fd = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0)
    if fd < 0:
        raise SetupError("landlock_create_ruleset: " + errname(ctypes.get_errno()))
    r = libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), 0)
    e = ctypes.get_errno()
    os.close(fd)
    return 0 if r == 0 else e


def landlock_full():
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), 1)
    if abi < 4:
        die(3, "Landlock ABI %d: a network-only ruleset needs ABI 4" % max(abi, 0))
    # Until the kernel refuses: whatever domains this process had already.
    for _ in range(64):
        e = landlock_domain()
        if e == errno.E2BIG:
            return
        if e != 0:
            raise SetupError("landlock_restrict_self: " + errname(e))
    raise SetupError("landlock_restrict_self: no E2BIG after 64 domains")


def fits(n, first=()):
    """Reports whether a filter of n instructions (0: none) could be
    attached after filters of the sizes first. The tries are made in a
    child, so this process's budget is untouched."""
    pid = os.fork()
    if pid == 0:
        ok = all(install_filter(allow_all(m)) == 0 for m in first)
        os._exit(0 if ok and (n == 0 or install_filter(allow_all(n)) == 0) else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def largest(ok):
    """The largest n in 1..BPF_MAXINSNS for which ok(n) holds (ok is
    monotone), 0 if none."""
    lo, hi = 0, BPF_MAXINSNS
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def attach(n):
    e = install_filter(allow_all(n))
    if e != 0:
        raise SetupError("seccomp: allow-all filter of %d instructions: %s" % (n, errname(e)))


def seccomp_fill(room):
    """Attaches allow-all filters until the largest filter that can still
    be attached has room instructions (none for 0). The kernel limits the
    instructions of all the filters a thread runs, each counted with a
    penalty (MAX_INSNS_PER_PATH in kernel/seccomp.c), in its own units
    (the programs as translated to eBPF), so the fill is found by trying
    rather than computed."""
    if not 0 <= room < BPF_MAXINSNS:
        raise SetupError("seccomp room %d out of range 0-%d" % (room, BPF_MAXINSNS - 1))
    if not fits(room):
        raise SetupError("seccomp: no room for %d instructions to begin with" % room)
    # Full filters while another full one would still fit after each.
    while fits(BPF_MAXINSNS, [BPF_MAXINSNS]):
        attach(BPF_MAXINSNS)
    while fits(room + 1):
        # The largest filter that still leaves room.
        n = largest(lambda m: fits(room, [m]))
        if n == BPF_MAXINSNS and fits(room + 1, [n]) and not fits(room, [n, 1]):
            # It would leave more than room but too little for any
            # further filter: half of it leaves enough for one.
            n //= 2
        if n == 0:
            raise SetupError("seccomp: cannot leave room for exactly %d instructions" % room)
        attach(n)
    if not fits(room):
        raise SetupError("seccomp: the fill left no room for %d instructions" % room)


def no_userns():
    """Refuses unshare and clone with CLONE_NEWUSER (EPERM) and clone3,
    whose flags a filter cannot read (ENOSYS, which libcs take to mean
    "use clone"). Syscalls made through another architecture's entry
    point, which would bypass the numbers checked, kill the process."""
    a = arch()
    f = [
        (LD_W_ABS, 0, 0, OFF_ARCH),
        (JEQ_K, 1, 0, a["audit"]),
        (RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        (LD_W_ABS, 0, 0, OFF_NR),
    ]
    if a["x32"]:
        f += [(JGE_K, 0, 1, a["x32"]), (RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)]
    f += [
        (JEQ_K, 0, 1, SYS_CLONE3),
        (RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
        (JEQ_K, 1, 0, a["unshare"]),
        (JEQ_K, 0, 3, a["clone"]),
        (LD_W_ABS, 0, 0, OFF_ARG0),  # the flags, for both
        (JSET_K, 0, 1, CLONE_NEWUSER),
        (RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        (RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    e = install_filter(f)
    if e != 0:
        raise SetupError("seccomp: the no-userns filter: " + errname(e))


def probe(what, args):
    arch()
    no_new_privs()
    if what == "landlock":
        e = landlock_domain()
    elif what == "seccomp":
        n = int(args[0]) if args else 1
        what += " %d" % n
        e = install_filter(allow_all(n))
    else:
        die(2, "unknown probe %r" % what)
    print("probe %s: %s" % (what, "ok" if e == 0 else errname(e)))


def main(argv):
    if len(argv) >= 2 and argv[0] == "probe":
        return probe(argv[1], argv[2:])
    if len(argv) < 3 or argv[1] != "--":
        die(2, "usage: degrade.py MODE -- COMMAND [ARGS...] | degrade.py probe WHAT [ARG]")
    mode, cmd = argv[0], argv[2:]
    arch()
    no_new_privs()
    if mode == "nnp":
        pass
    elif mode == "landlock-one":
        e = landlock_domain()
        if e != 0:
            raise SetupError("landlock_restrict_self: " + errname(e))
    elif mode == "landlock-full":
        landlock_full()
    elif mode == "seccomp-full":
        seccomp_fill(0)
    elif mode.startswith("seccomp-room="):
        seccomp_fill(int(mode.split("=", 1)[1]))
    elif mode == "no-userns":
        no_userns()
    else:
        die(2, "unknown mode %r" % mode)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        die(2, "exec %s: %s" % (cmd[0], e))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (SetupError, ValueError, OSError) as e:
        die(2, "%s: %s" % (sys.argv[1] if len(sys.argv) > 1 else "?", e))
