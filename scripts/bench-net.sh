#!/usr/bin/env bash
# scripts/bench-net.sh measures fence's network side in one run (DESIGN.md
# §11): CONNECT relay throughput against direct loopback, the same through
# the whole sandbox path with curl, the latency the proxy adds per request,
# and the daemon's RSS idle and holding 1000 tunnels. Run it as an ordinary
# user (the sandbox refuses root unless FENCE_TEST_AS_ROOT=1).
set -euo pipefail
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go test -run '^$' -bench '^BenchmarkNet$' -benchtime 1x -count "${FENCE_BENCH_COUNT:-1}" ./proxy/e2e
