#!/usr/bin/env bash
# bench.sh measures the sandbox's start-up cost against bubblewrap, side by
# side in one hyperfine run (DESIGN.md §11):
#   fence -- true   (the daemon already running, as in daily use)
#   bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true
# and prints the ratio fence/bwrap (target <= 1.0, must not exceed 1.5),
# plus where fence's time goes (fence -d's timing lines).
# Usage: scripts/bench.sh [path/to/fence]   (builds ./cmd/fence if none)
# Run it as an ordinary user. Needs hyperfine and bwrap.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in hyperfine bwrap; do
	command -v "$tool" >/dev/null || { echo "bench.sh: $tool is not installed" >&2; exit 2; }
done
work=$(mktemp -d "${HOME}/.cache/fence-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
fence=${1:-}
if [[ -z $fence ]]; then
	fence=$work/fence
	CGO_ENABLED=0 go build -trimpath -o "$fence" ./cmd/fence
fi
fence=$(cd "$(dirname "$fence")" && pwd)/$(basename "$fence")
mkdir -p "$work/proj"
printf '[filesystem]\nallowWrite = ["."]\n' >"$work/proj/.fence.toml"
cd "$work/proj"

# Warm up: start the daemon (if this build has one) and the page cache.
"$fence" -s .fence.toml -- true
runs=${FENCE_BENCH_RUNS:-200}
hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/h.json" \
	-n fence "$fence -s .fence.toml -- true" \
	-n bwrap "bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true" \
	-n "fence version (one process start, no sandbox)" "$fence version"
python3 - "$work/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
f, b, v = r["fence"], r["bwrap"], r["fence version (one process start, no sandbox)"]
ms = lambda x: x * 1000
print()
print("| what | mean | median | min |")
print("|---|---|---|---|")
for name, x in (("fence -- true", f), ("bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true", b), ("fence version (one process start, no sandbox)", v)):
    print(f"| {name} | {ms(x['mean']):.2f} ms | {ms(x['median']):.2f} ms | {ms(x['min']):.2f} ms |")
print()
print(f"ratio fence/bwrap: mean {f['mean']/b['mean']:.2f}, median {f['median']/b['median']:.2f}, min {f['min']/b['min']:.2f} (target <= 1.0, limit 1.5)")
PY
echo
echo "where fence's time goes (fence -d, 5 runs):"
for _ in 1 2 3 4 5; do
	"$fence" -s .fence.toml -d -- true 2>&1 | grep timing | tr '\n' ' '
	echo
done
