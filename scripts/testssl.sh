#!/usr/bin/env bash
# Runs testssl.sh's full default set of checks (protocols, ciphers per
# protocol, forward secrecy, server preferences and defaults, HTTP headers,
# every vulnerability, client simulations) against lbproxy's HTTPS frontend
# with a certificate from a CA generated at test time and -hsts 31536000:
# TestLBProxyTestSSL of examples/lbproxy with LBKIT_TESTSSL_FULL=1. It fails
# on every finding above INFO but those the test lists as tolerated, with
# their reasons (a test PKI, the backend's own headers). The test log lists
# the findings by severity.
#
#	./scripts/testssl.sh                 # about 5 minutes
#
# Needs testssl (Debian package testssl.sh) and openssl;
# scripts/deps/hardening.sh installs them as root. Not part of
# scripts/test.sh, whose run of the same test checks a shorter set.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v testssl >/dev/null 2>&1 || {
  echo "testssl.sh: testssl not found: apt-get install testssl.sh" >&2
  exit 1
}
LBKIT_TESTSSL_FULL=1 CI=true go test -count=1 -timeout 40m -run '^TestLBProxyTestSSL$' -v ./examples/lbproxy
