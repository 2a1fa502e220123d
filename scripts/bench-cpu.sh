#!/usr/bin/env bash
# bench-cpu.sh measures the CPU each `fence -- true` costs, next to
# bubblewrap's, by interleaving the commands (each round runs every command
# once): user and system time of the command with its waited-for children
# (rusage: the client, the sandbox init and `true`), and the daemon's CPU
# over the whole loop, per command, with its reaped children's (it ends a
# session and boots the next init a few ms after the client exits, outside
# the command's own run): the warm sandbox inits it
# boots, whose CPU a client that takes one no longer pays itself (from
# /proc/PID/stat, in clock ticks: coarse, compare totals of many runs
# only). On a shared 2-core machine CPU, not waiting, bounds the wall time
# (docs/benchmarks.md).
# Usage: scripts/bench-cpu.sh RUNS FENCE [FENCE...]
# Each build gets its own private daemon (its own runtime directory), so
# that a daemon's work after one command (ending the session) is not
# counted for the next. Run it as an ordinary user.
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# < 2)); then
	echo "usage: scripts/bench-cpu.sh RUNS FENCE [FENCE...]" >&2
	exit 2
fi
for tool in bwrap python3; do
	command -v "$tool" >/dev/null || { echo "bench-cpu.sh: $tool is not installed" >&2; exit 2; }
done
runs=$1
shift
bins=()
for b in "$@"; do
	bins+=("$(cd "$(dirname "$b")" && pwd)/$(basename "$b")")
done
work=$(mktemp -d "${HOME}/.cache/fence-bench-cpu.XXXXXX")
cleanup() {
	for i in "${!bins[@]}"; do
		if [[ -d $work/rt$i/fence ]]; then
			XDG_RUNTIME_DIR=$work/rt$i "${bins[$i]}" daemon stop >/dev/null 2>&1 || true
		fi
	done
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/proj"
for i in "${!bins[@]}"; do
	mkdir -m 700 "$work/rt$i"
done
printf '[filesystem]\nallowWrite = ["."]\n' >"$work/proj/.fence.toml"
cd "$work/proj"
python3 - "$runs" "$work" "${bins[@]}" <<'PY'
import os, resource, subprocess, sys, time
runs, work, bins = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
cmds = [[b, "-s", ".fence.toml", "--", "true"] for b in bins]
cmds.append(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"])
rts = ["%s/rt%d" % (work, i) for i in range(len(bins))] + [None]
def env(i):
    e = dict(os.environ)
    if rts[i]:
        e["XDG_RUNTIME_DIR"] = rts[i]
    return e
for i, c in enumerate(cmds):  # warm up (and start the daemons)
    for _ in range(5):
        subprocess.run(c, stdin=subprocess.DEVNULL, check=True, env=env(i))
def daemon_ticks(rt):
    if rt is None:
        return 0
    # The daemon is the process whose environment names our runtime directory.
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if ("XDG_RUNTIME_DIR=" + rt).encode() + b"\0" not in open(f"/proc/{pid}/environ", "rb").read():
                continue
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            # Its own time and its reaped children's: the warm sandbox
            # inits it boots for the clients (scripts/bench-cpu.sh counts
            # their CPU here, a cold client's with the client).
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        except OSError:
            pass
    return total
tick = os.sysconf("SC_CLK_TCK")
sums = [[0.0, 0.0, 0.0] for _ in cmds]
# The daemon's CPU is counted over the whole loop, not within each
# command's run: it ends a session, boots the next warm init and reaps the
# last one (whose teardown waits for its client) a few milliseconds after
# the client exits, by design.
d_start = [daemon_ticks(rt) for rt in rts]
for _ in range(runs):
    for i, c in enumerate(cmds):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run(c, stdin=subprocess.DEVNULL, env=env(i))
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode != 0:
            print("exit status %d: %s" % (r.returncode, " ".join(c)), file=sys.stderr)
        sums[i][0] += r1.ru_utime - r0.ru_utime
        sums[i][1] += r1.ru_stime - r0.ru_stime
time.sleep(0.5)
for i, rt in enumerate(rts):
    sums[i][2] = (daemon_ticks(rt) - d_start[i]) / tick
print("| command | user | system | total | daemon (with its warm inits) |")
print("|---|---|---|---|---|")
for c, (u, s, d) in zip(cmds, sums):
    name = "bwrap" if c[0] == "bwrap" else c[0] + " -- true"
    u, s, d = (x / runs * 1000 for x in (u, s, d))
    print("| %s | %.2f ms | %.2f ms | %.2f ms | %s |" % (name, u, s, u + s, "%.2f ms" % d if c[0] != "bwrap" else ""))
PY
