#!/usr/bin/env bash
# bench-ab.sh compares fence builds with each other and with bubblewrap by
# interleaving them: each round runs every command once, in a new random
# order, so a change in the machine's load hits all of them alike
# (hyperfine runs one command after the other, and on a shared machine the
# load moves between them). Each build runs from a fresh copy of its file.
# Usage: scripts/bench-ab.sh ROUNDS FENCE [FENCE...]
# Prints median, mean, p25 and min wall time of `FENCE -- true` for each
# build and of `bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc
# true`, and each median's ratio to bwrap's. Each build gets a private daemon
# of its own (its own runtime directory): a warm sandbox init is only taken
# by a client of the daemon's own binary. Run it as an ordinary user.
# FENCE_BENCH_COLD=1 also runs each build with FENCE_WARM_INIT=0 (the client
# clones its sandbox init instead of taking one the daemon booted ahead).
# FENCE_BENCH_PAUSE=SECONDS pauses before each command (default 0): the
# daemon boots the next warm init after a command, and without a pause that
# work lands on whichever command runs next, another build's included.
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# < 2)); then
	echo "usage: scripts/bench-ab.sh ROUNDS FENCE [FENCE...]" >&2
	exit 2
fi
for tool in bwrap python3; do
	command -v "$tool" >/dev/null || { echo "bench-ab.sh: $tool is not installed" >&2; exit 2; }
done
rounds=$1
shift
bins=()
for b in "$@"; do
	bins+=("$(cd "$(dirname "$b")" && pwd)/$(basename "$b")")
done
work=$(mktemp -d "${HOME}/.cache/fence-bench-ab.XXXXXX")
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
# Each build runs from a fresh copy: the same bytes measured up to 0.6 ms
# apart depending on how and when the file came into the page cache
# (written by the linker, copied, read back after a cache drop), which
# would otherwise pass for a difference between the builds.
copies=()
for i in "${!bins[@]}"; do
	mkdir -p "$work/rt$i"
	chmod 700 "$work/rt$i"
	cp "${bins[$i]}" "$work/fence$i"
	copies+=("$work/fence$i")
done
export FENCE_BENCH_WORK=$work
printf '[filesystem]\nallowWrite = ["."]\n' >"$work/proj/.fence.toml"
cd "$work/proj"
python3 - "$rounds" "${#bins[@]}" "${bins[@]}" "${copies[@]}" <<'PY'
import os, random, statistics, subprocess, sys, time
rounds, n = int(sys.argv[1]), int(sys.argv[2])
names, bins = sys.argv[3:3 + n], sys.argv[3 + n:]
cold = os.environ.get("FENCE_BENCH_COLD") == "1"
pause = float(os.environ.get("FENCE_BENCH_PAUSE") or 0)
env = dict(os.environ)
cmds = []
for i, b in enumerate(bins):
    rt = "%s/rt%d" % (os.environ["FENCE_BENCH_WORK"], i)
    cmds.append(([b, "-s", ".fence.toml", "--", "true"], dict(env, XDG_RUNTIME_DIR=rt), names[i] + " -- true"))
    if cold:
        cmds.append(([b, "-s", ".fence.toml", "--", "true"], dict(env, XDG_RUNTIME_DIR=rt, FENCE_WARM_INIT="0"), names[i] + " -- true (FENCE_WARM_INIT=0)"))
cmds.append((["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"], env, "bwrap"))
for c, e, _ in cmds:  # warm up (and start the daemon)
    for _ in range(5):
        subprocess.run(c, stdin=subprocess.DEVNULL, env=e, check=True)
times = [[] for _ in cmds]
order = list(range(len(cmds)))
for _ in range(rounds):
    # A new order each round: no build always runs first, or right after
    # bwrap.
    random.shuffle(order)
    for i in order:
        c, e, _ = cmds[i]
        if pause:
            time.sleep(pause)
        t = time.perf_counter()
        r = subprocess.run(c, stdin=subprocess.DEVNULL, env=e)
        times[i].append((time.perf_counter() - t) * 1000)
        if r.returncode != 0:
            print("exit status %d: %s" % (r.returncode, " ".join(c)), file=sys.stderr)
ref = statistics.median(times[-1])
print("| command | median | mean | p25 | min | max | median / bwrap |")
print("|---|---|---|---|---|---|---|")
for (c, _, name), v in zip(cmds, times):
    print("| %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f |" % (
        name, statistics.median(v), statistics.mean(v), statistics.quantiles(v, n=4)[0], min(v), max(v),
        statistics.median(v) / ref))
PY
