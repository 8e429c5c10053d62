#!/usr/bin/env bash
# Runs the end-to-end benchmark: lbproxy side by side with HAProxy, nginx,
# Caddy and a plain net/http proxy, through the harness in ../shared/bench
# (see its README). The harness writes next to itself, so it runs from a
# copy. Knobs are the harness's (SCENARIOS, PEERS, REPS, DURATION, OUT...);
# LBPROXY_FLAGS adds flags to every lbproxy command line.
#
#   scripts/bench.sh                                   # default scenarios b-h
#   SCENARIOS="b c d h" PEERS="haproxy goproxy" scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
src=${BENCH_DIR:-../shared/bench}
[ -x "$src/run.sh" ] || { echo "bench.sh: no harness at $src (set BENCH_DIR)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src" "$work/bench"
chmod -R u+w "$work/bench"
go build -o "$work/lbproxy" ./examples/lbproxy

lbp="$work/lbproxy ${LBPROXY_FLAGS:-}"
export CANDIDATE_NAME=${CANDIDATE_NAME:-lbkit}
export CANDIDATE_CMD="$lbp -mode {MODE} -listen {LISTEN} -backends {BACKENDS} -cert {CERT} -key {KEY}"
# Scenario-specific modes, where lbproxy has them: bridging to the harness's
# self-signed backends, SNI passthrough, and HTTP/3 (scenario q, optional:
# SCENARIOS="q").
usage=$("$work/lbproxy" -h 2>&1 || true)
if grep -q -- '-backend-insecure' <<<"$usage"; then
  export CANDIDATE_CMD_i="$lbp -mode https-bridge -backend-insecure -listen {LISTEN} -backends {BACKENDS} -cert {CERT} -key {KEY}"
fi
if grep -q 'tls-passthrough' <<<"$usage"; then
  export CANDIDATE_CMD_p="$lbp -mode tls-passthrough -listen {LISTEN} -backends {BACKENDS}"
fi
if grep -q -- '-http3' <<<"$usage"; then
  # HTTP/3 on the UDP port of {LISTEN}, beside HTTPS on its TCP port.
  export CANDIDATE_CMD_q="$lbp -mode https -http3 -listen {LISTEN} -backends {BACKENDS} -cert {CERT} -key {KEY}"
fi
export OUT=${OUT:-$PWD/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
"$work/bench/run.sh"
echo "report: $OUT/report.md"
