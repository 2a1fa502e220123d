#!/usr/bin/env bash
# scripts/test.sh runs every check fence's CI runs: formatting, vet and
# staticcheck for Linux and macOS, shellcheck, the whole test suite, and a
# short run of every fuzz target. Run it as an ordinary (non-root) user: the
# sandbox tests need to see what a real user sees. FENCE_TEST_STRICT=1 turns
# skips for missing kernel features into failures (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FENCE_FUZZTIME:-10s}
step() { printf '\n== %s\n' "$*"; }

if [ "$(id -u)" = 0 ] && [ "${FENCE_TEST_AS_ROOT:-}" != 1 ]; then
	echo "scripts/test.sh: run the tests as an unprivileged user (root hides real-world bugs);" >&2
	echo "scripts/test.sh: set FENCE_TEST_AS_ROOT=1 to run them as root anyway" >&2
	exit 2
fi

step gofmt
unformatted=$(gofmt -l . | grep -v '^vendor/' || true)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go build and vet (linux, darwin)"
go build ./...
GOOS=darwin go build ./...
go vet ./...
GOOS=darwin go vet ./...

step "staticcheck (linux, darwin)"
if command -v staticcheck >/dev/null 2>&1; then
	staticcheck ./...
	GOOS=darwin staticcheck ./...
else
	echo "staticcheck not installed: skipped (install: go install honnef.co/go/tools/cmd/staticcheck@latest)"
	[ "${FENCE_TEST_STRICT:-}" = 1 ] && exit 1
fi

step shellcheck
if command -v shellcheck >/dev/null 2>&1; then
	shellcheck install.sh scripts/*.sh .ci/run
	# The hooks are bash and zsh/fish snippets; bash is the one shellcheck reads.
	[ -f shellhook/hook.bash ] && shellcheck -s bash shellhook/hook.bash
else
	echo "shellcheck not installed: skipped"
	[ "${FENCE_TEST_STRICT:-}" = 1 ] && exit 1
fi

step "go test"
go test -count=1 -timeout 30m "$@" ./...

# Sandboxes that may write the whole host quarantine, at their end, what
# other tests created meanwhile: they run with nothing beside them.
step "go test, sandboxes that may write the whole host (alone)"
FENCE_TEST_ALONE=1 go test -count=1 -timeout 10m "$@" -run '^TestScriptAlone$' ./cmd/fence

# The in-process packages again under the race detector; the integration
# suites drive a separately built (CGO_ENABLED=0) fence binary, which -race
# cannot instrument.
step "go test -race (in-process packages)"
go test -race -count=1 ./proxy/ ./proxy/daemon/ ./cmd/internal/... ./shellhook/

step "fuzz (each target for $fuzztime)"
grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' . | while read -r file; do
	pkg=./$(dirname "${file#./}")
	grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -d' ' -f2 | while read -r target; do
		echo "$pkg $target"
		for try in 1 2; do
			before=$({ find "$pkg/testdata/fuzz/$target" -type f 2>/dev/null || true; } | wc -l)
			if out=$(go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" 2>&1); then
				break
			fi
			after=$({ find "$pkg/testdata/fuzz/$target" -type f 2>/dev/null || true; } | wc -l)
			# Go's fuzzing coordinator can give up on a slow worker at the
			# deadline ("context deadline exceeded") on a loaded machine; that
			# is no finding (nothing saved), so try once more. A saved input
			# is a real failure.
			if [ "$try" = 1 ] && [ "$after" = "$before" ] && grep -q 'context deadline exceeded' <<<"$out"; then
				echo "fuzz: $target: the fuzzing engine timed out a worker without a finding; once more"
				continue
			fi
			echo "$out"
			echo "fuzz: $target failed (a failing input, if any, is saved under $pkg/testdata/fuzz/$target)"
			exit 1
		done
	done
done
echo "fuzz: all targets ran clean"
