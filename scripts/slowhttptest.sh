#!/usr/bin/env bash
# Runs slowhttptest's slow headers (-H), slow body (-B) and slow read (-X)
# attacks against lbproxy at the tool's default test length (240 s) and
# connection rate (50/s), 1000 connections each and all three at once,
# while a probe client sends legitimate requests: TestLBProxySlowHTTP of
# examples/lbproxy with LBKIT_SLOWHTTP_LONG=1. Every probe request must
# succeed within 5 s, and lbproxy's timeouts must close every slow
# connection before the tool's end. The test log holds the figures: per
# attack, the connections closed, pending and connected every 5 s next to
# lbproxy's open sessions, and the probe's count and latency.
#
#	./scripts/slowhttptest.sh            # about 4 minutes
#
# Needs slowhttptest (Debian package slowhttptest; scripts/deps/hardening.sh
# installs it as root). Not part of scripts/test.sh, whose run of the same
# test is short (30 to 90 s).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v slowhttptest >/dev/null 2>&1 || {
  echo "slowhttptest.sh: slowhttptest not found: apt-get install slowhttptest" >&2
  exit 1
}
LBKIT_SLOWHTTP_LONG=1 CI=true go test -count=1 -timeout 15m -run '^TestLBProxySlowHTTP$' -v ./examples/lbproxy
