#!/usr/bin/env bash
# Runs the whole test suite: formatting, vet, every test with the race
# detector, then the allocation tests without it. It first installs what
# the tests need that a fresh machine lacks: a C compiler for the race
# detector, and through each scripts/deps/*.sh the servers or tools of one
# capability (Debian packages with apt-get as root; Go tools at the
# versions pinned in scripts/tools/go.mod). An install that fails names
# what failed and stops the run. Without root, Debian packages are not
# installed: the tests that need them skip, or fail when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "test.sh: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 || die "Go is required (https://go.dev/dl/)"

# apt_failed WHAT LOG: reports a failed apt-get with its last lines, stops.
apt_failed() {
  echo "test.sh: $1 failed; apt-get's last lines:" >&2
  tail -n 20 "$2" | sed 's/^/  /' >&2
  rm -f "$2"
  exit 1
}

# apt_install PKG...: installs the Debian packages not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: not installing ${missing[*]} (Debian packages; that needs root and apt-get): tests needing them skip, or fail with CI=true" >&2
    return 0
  fi
  local log
  log=$(mktemp)
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq >"$log" 2>&1 || apt_failed "apt-get update (before installing ${missing[*]})" "$log"
    APT_UPDATED=1
  fi
  # The tests start the servers they need on loopback; keep the packages'
  # own services from starting (as in containers, where they cannot).
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "${missing[@]}" >"$log" 2>&1 || rc=$?
  if [ -n "$made_policy" ]; then
    rm -f "$policy"
  fi
  [ $rc -eq 0 ] || apt_failed "installing the Debian packages ${missing[*]}" "$log"
  rm -f "$log"
}

# Go tools the tests run are built at the versions pinned by the tool
# directives of scripts/tools/go.mod into LBKIT_TOOLS_BIN, where the tests
# take them from (internal/testutil.LookTool), never from PATH.
export LBKIT_TOOLS_BIN="$PWD/scripts/tools/bin"

# go_tool PKG...: builds the pinned tools PKG... into LBKIT_TOOLS_BIN.
go_tool() {
  local pkg log
  mkdir -p "$LBKIT_TOOLS_BIN"
  for pkg in "$@"; do
    log=$(mktemp)
    if ! go build -C scripts/tools -o "$LBKIT_TOOLS_BIN/" "$pkg" >"$log" 2>&1; then
      echo "test.sh: building the tool $pkg (pinned in scripts/tools/go.mod) failed:" >&2
      sed 's/^/  /' "$log" >&2
      rm -f "$log"
      exit 1
    fi
    rm -f "$log"
  done
}

# The race detector needs cgo, and cgo needs the C compiler go uses
# (go env CC, gcc unless set) and the C library's headers.
cc=$(go env CC)
cc=${cc%% *}
if ! command -v "$cc" >/dev/null 2>&1; then
  apt_install gcc libc6-dev
  command -v "$cc" >/dev/null 2>&1 ||
    die "go test -race needs cgo and a C compiler, and $cc is not installed: install gcc and libc6-dev (as root, this script does) or set CC"
fi

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
# Every example builds when its directory is copied alone into a module of
# its own: examples use only the public packages.
scripts/check-examples.sh >/dev/null
CGO_ENABLED=1 go test -race -count=1 -timeout 12m "$@" ./...

# The race detector makes sync.Pool drop items at random, so the tests
# that count allocations (testing.AllocsPerRun, named *Alloc*) skip under
# -race or mean less there: run them again without it, in the packages
# that have them. At least one must run, and none may skip.
mapfile -t alloc_pkgs < <(grep -rlE --include='*_test.go' '^func Test[A-Za-z0-9_]*Alloc' . | xargs -r -n1 dirname | sort -u)
[ ${#alloc_pkgs[@]} -gt 0 ] || die "no allocation test (func Test...Alloc...) found"
log=$(mktemp)
if ! go test -count=1 -timeout 5m -run 'Alloc' -v "${alloc_pkgs[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  die "the allocation tests failed without -race"
fi
passed=$(sed -n 's/^--- PASS: \([^ ]*\).*/\1/p' "$log" | tr '\n' ' ')
skipped=$(sed -n 's/^--- SKIP: \([^ ]*\).*/\1/p' "$log" | tr '\n' ' ')
rm -f "$log"
[ -z "$skipped" ] || die "allocation tests skipped without -race: $skipped"
[ -n "$passed" ] || die "no allocation test ran without -race"
echo "test.sh: without -race: ok ${passed% }"
