#!/usr/bin/env bash
# Runs the whole test suite: formatting, vet, and every test with the race
# detector. It first installs what the tests need that a fresh machine
# lacks: each scripts/deps/*.sh installs the servers or tools of one
# capability (they use apt-get as root, or go install).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: Go is required (https://go.dev/dl/)" >&2
  exit 1
fi

# apt_install PKG...: installs the Debian packages not installed yet.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: cannot install ${missing[*]} (need root and apt-get); tests needing them will skip" >&2
    return 0
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  # The tests start the servers they need on loopback; keep the packages'
  # own services from starting (as in containers, where they cannot).
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ -n "$made_policy" ] && rm -f "$policy"
  return $rc
}

for deps in scripts/deps/*.sh; do
  [ -e "$deps" ] || continue
  # shellcheck source=/dev/null
  . "$deps"
done

unformatted=$(gofmt -l . | grep -v '^vendor/' || true)
if [ -n "$unformatted" ]; then
  echo "test.sh: gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 12m "$@" ./...
