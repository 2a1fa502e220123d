#!/usr/bin/env bash
# bench-hook.sh measures what fence's shell integration costs, side by side
# with direnv in the same run (DESIGN.md §11):
#   1. the hook's cost per prompt (bash, zsh, fish): $PWD unchanged, and
#      $PWD changed to a directory with no .fence.toml above it (6 levels
#      deep, so the walk up is real work); direnv's per-prompt cost
#      (`direnv export bash` in a directory without .envrc) for comparison;
#   2. `cd` into a project to a ready prompt: `fence shell` until the fenced
#      bash shows its first prompt and exits, against the same bash started
#      directly (the shell's own startup);
#   3. PTY relay throughput: 64 MiB of base64 text printed by bash in a PTY
#      and relayed to /dev/null, by fence (fence shell: one PTY, relay and
#      escape filter) and by script(1) (one PTY, plain copy).
# Usage: scripts/bench-hook.sh [path/to/fence]   (builds ./cmd/fence if none)
# Run it as an ordinary user (the sandbox needs unprivileged user namespaces).
# Output is Markdown rows for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${HOME}/.cache/fence-bench-hook.XXXXXX")
trap 'rm -rf "$work"' EXIT
fence=${1:-}
if [[ -z $fence ]]; then
	fence=$work/fence
	CGO_ENABLED=0 go build -o "$fence" ./cmd/fence
fi
fence=$(cd "$(dirname "$fence")" && pwd)/$(basename "$fence")

deep=$work/plain/a/b/c/d/e/f
mkdir -p "$deep" "$work/plain/x" "$work/home" "$work/proj"
n=${N:-5000}
nd=${ND:-300}

# The hook only acts in an interactive shell with a terminal: run each
# measurement under script(1)'s pty.
inpty() { script -qec "$1" /dev/null </dev/null | tr -d '\r'; }

"$fence" hook bash >"$work/hook.bash"
"$fence" hook zsh >"$work/hook.zsh"
"$fence" hook fish >"$work/hook.fish"

cat >"$work/bench.bash" <<BASH
source "$work/hook.bash"
us() { local t=\${EPOCHREALTIME/./}; echo "\$t"; }
cd "$deep"; _fence_hook
t0=\$(us); for ((i = 0; i < $n; i++)); do _fence_hook; done; t1=\$(us)
echo "bash unchanged \$(( (t1 - t0) * 1000 / $n ))"
t0=\$(us); for ((i = 0; i < $n; i++)); do cd "$work/plain/x"; cd "$deep"; done; t1=\$(us)
base=\$((t1 - t0))
t0=\$(us); for ((i = 0; i < $n; i++)); do cd "$work/plain/x"; _fence_hook; cd "$deep"; _fence_hook; done; t1=\$(us)
echo "bash changed \$(( (t1 - t0 - base) * 1000 / (2 * $n) ))"
cd "$deep"
t0=\$(us); for ((i = 0; i < $nd; i++)); do eval "\$(direnv export bash 2>/dev/null)"; done; t1=\$(us)
echo "direnv export \$(( (t1 - t0) * 1000 / $nd ))"
BASH

cat >"$work/bench.zsh" <<ZSH
source "$work/hook.zsh"
zmodload zsh/datetime
us() { print -r -- \${\$(( EPOCHREALTIME * 1000000 ))%.*}; }
cd "$deep"; _fence_hook
t0=\$(us); for ((i = 0; i < $n; i++)); do _fence_hook; done; t1=\$(us)
echo "zsh unchanged \$(( (t1 - t0) * 1000 / $n ))"
t0=\$(us); for ((i = 0; i < $n; i++)); do cd "$work/plain/x"; cd "$deep"; done; t1=\$(us)
base=\$((t1 - t0))
t0=\$(us); for ((i = 0; i < $n; i++)); do cd "$work/plain/x"; _fence_chpwd; _fence_hook; cd "$deep"; _fence_chpwd; _fence_hook; done; t1=\$(us)
echo "zsh changed \$(( (t1 - t0 - base) * 1000 / (2 * $n) ))"
ZSH

nf=$((n / 5))
cat >"$work/bench.fish" <<FISH
source $work/hook.fish
cd $deep; emit fish_prompt
set -l loop (seq $nf)
set t0 (date +%s%N); for i in \$loop; emit fish_prompt; end; set t1 (date +%s%N)
echo "fish unchanged" (math -s0 "(\$t1 - \$t0) / $nf")
set t0 (date +%s%N); for i in \$loop; cd $work/plain/x; cd $deep; end; set t1 (date +%s%N)
set base (math "\$t1 - \$t0")
set t0 (date +%s%N); for i in \$loop; cd $work/plain/x; emit fish_prompt; cd $deep; emit fish_prompt; end; set t1 (date +%s%N)
echo "fish changed" (math -s0 "(\$t1 - \$t0 - \$base) / (2 * $nf)")
FISH

results=()
while read -r sh what ns; do
	results+=("$sh $what $ns")
done < <(
	inpty "bash --norc --noprofile -i $work/bench.bash"
	command -v zsh >/dev/null && inpty "zsh -f -i $work/bench.zsh"
	command -v fish >/dev/null && inpty "fish --no-config -i $work/bench.fish"
)

echo "| shell | per prompt, \$PWD unchanged | per prompt, \$PWD changed, no project | processes started |"
echo "|---|---|---|---|"
for sh in bash zsh fish; do
	u='' c=''
	for r in "${results[@]}"; do
		# shellcheck disable=SC2086 # split on purpose
		set -- $r
		[[ $1 == "$sh" && $2 == unchanged ]] && u=$3
		[[ $1 == "$sh" && $2 == changed ]] && c=$3
	done
	[[ -n $u ]] && printf '| %s hook | %d.%03d µs | %d.%03d µs | 0 |\n' "$sh" $((u / 1000)) $((u % 1000)) $((c / 1000)) $((c % 1000))
done
for r in "${results[@]}"; do
	# shellcheck disable=SC2086 # split on purpose
	set -- $r
	# shellcheck disable=SC2016 # a literal command line
	[[ $1 == direnv ]] && printf '| direnv (`eval "$(direnv export bash)"`, no .envrc) | %d.%03d µs | same | 1 per prompt |\n' $(($3 / 1000)) $(($3 % 1000))
done

# cd to ready prompt. The user's rc makes the shell exit at its first
# prompt, so each run is: start, load rc (and fence's init), prompt, exit.
printf '[filesystem]\nallowWrite = ["."]\n' >"$work/proj/.fence.toml"
cat >"$work/home/.bashrc" <<'RC'
PS1='$ '
PROMPT_COMMAND='exit 0'
RC
export HOME=$work/home SHELL=/bin/bash FENCE_HOOK=off
export XDG_CONFIG_HOME=$HOME/.config XDG_STATE_HOME=$HOME/.local/state XDG_DATA_HOME=$HOME/.local/share
(cd "$work/proj" && "$fence" allow >/dev/null)
if command -v hyperfine >/dev/null; then
	# shellcheck disable=SC2086 # HYPERFINE_FLAGS may hold several flags
	hyperfine ${HYPERFINE_FLAGS:-} -N --warmup 3 --runs "${RUNS:-30}" --export-json "$work/cd.json" \
		-n 'bash -i (own startup)' "script -qec 'bash -i' /dev/null" \
		-n 'fence shell (bash)' "script -qec 'cd $work/proj && $fence shell' /dev/null" >/dev/null
	python3 - "$work/cd.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base, fence = r[0], r[1]
print()
print("| cd into a project to a ready prompt (bash) | mean | stddev |")
print("|---|---|---|")
for x in r:
    print(f"| {x['command']} | {x['mean']*1000:.1f} ms | {x['stddev']*1000:.1f} ms |")
print(f"| fence's own share (difference) | {(fence['mean']-base['mean'])*1000:.1f} ms | |")
PY
fi

# Relay throughput: the rc prints 64 MiB and exits.
cat >"$HOME/.bashrc" <<'RC'
head -c 50331648 /dev/zero | base64
exit 0
RC
if command -v hyperfine >/dev/null; then
	# shellcheck disable=SC2086 # HYPERFINE_FLAGS may hold several flags
	hyperfine ${HYPERFINE_FLAGS:-} -N --warmup 1 --runs "${RUNS_TP:-5}" --export-json "$work/tp.json" \
		-n 'script -q (bash)' "script -qec 'bash -i' /dev/null" \
		-n 'fence shell (bash)' "$fence shell $work/proj" >/dev/null
	python3 - "$work/tp.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
mib = 64
print()
print("| 64 MiB of output through the terminal | mean | throughput |")
print("|---|---|---|")
for x in r:
    print(f"| {x['command']} | {x['mean']*1000:.0f} ms | {mib/x['mean']:.0f} MiB/s |")
print(f"| ratio (fence / plain) | | {r[0]['mean']/r[1]['mean']:.2f}x |")
PY
fi
