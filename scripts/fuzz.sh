#!/usr/bin/env bash
# Fuzzes every fuzz target of the module in turn, one at a time, for
# FUZZTIME each (default 30s). An optional argument is a regular expression
# (grep -E) that target names must match:
#
#	./scripts/fuzz.sh                    # every target, 30s each
#	FUZZTIME=5s ./scripts/fuzz.sh        # every target, 5s each
#	./scripts/fuzz.sh 'Redis|PG'         # only the matching targets
#
# It stops at the first failure. Go has then written the failing input to
# the package's testdata/fuzz/FuzzName/ directory, the corpus that
# `go test` runs as seeds: fix the bug and commit that file with the fix.
# Not part of scripts/test.sh, which runs the checked-in corpora only.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-30s}
filter=${1:-.}

# "dir Name" for every fuzz target, from the test sources.
mapfile -t targets < <(
  grep -rHoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' . |
    sed -E 's#^\./(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]+)$#\1 \2#' |
    sort -u |
    awk -v f="$filter" '$2 ~ f'
)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz target matches $filter" >&2
  exit 1
fi

echo "fuzz.sh: ${#targets[@]} targets, $fuzztime each"
for t in "${targets[@]}"; do
  dir=${t% *}
  name=${t#* }
  echo "== ./$dir $name"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"; then
    cat >&2 <<MSG

fuzz.sh: $name in ./$dir failed. Go wrote the failing input to
./$dir/testdata/fuzz/$name/; reproduce it with
	go test -run '^$name/' ./$dir
then fix the bug and commit that file with the fix: go test runs it as a
seed from then on.
MSG
    exit 1
  fi
done
echo "fuzz.sh: all ${#targets[@]} targets passed"
