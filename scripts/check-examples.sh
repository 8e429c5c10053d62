#!/usr/bin/env bash
# Checks that every program under examples/ can be copied: each example
# directory's non-test Go files are copied alone into a fresh module that
# requires lbkit (replaced by this checkout) and built there, so an import
# of an internal package, or of a file the directory does not hold, fails.
#
#   scripts/check-examples.sh            # every example
#   scripts/check-examples.sh tcp acl    # some of them
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
go_version=$(sed -n 's/^go //p' "$root/go.mod")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for d in "$root"/examples/*/; do names+=("$(basename "$d")"); done
fi

failed=()
for name in "${names[@]}"; do
  src=$root/examples/$name
  if [ ! -d "$src" ]; then
    echo "check-examples: no example $name" >&2
    failed+=("$name")
    continue
  fi
  mod=$work/$name
  mkdir -p "$mod"
  for f in "$src"/*.go; do
    case $f in *_test.go) ;; *) cp "$f" "$mod/" ;; esac
  done
  cat >"$mod/go.mod" <<EOF
module example.com/$name

go $go_version

require github.com/lbkit/lbkit v0.0.0-00010101000000-000000000000

replace github.com/lbkit/lbkit => $root
EOF
  cp "$root/go.sum" "$mod/go.sum"
  # -mod=mod lets go add the requirements lbkit brings in, from the module
  # cache (or the proxy), as a reader's own `go mod tidy` would.
  if (cd "$mod" && GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=mod" go build -o /dev/null . >"$work/$name.log" 2>&1); then
    echo "ok   examples/$name"
  else
    echo "FAIL examples/$name" >&2
    sed 's/^/     /' "$work/$name.log" >&2
    failed+=("$name")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "check-examples: ${#failed[@]} example(s) do not build alone: ${failed[*]}" >&2
  exit 1
fi
