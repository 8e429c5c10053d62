#!/usr/bin/env bash
# Runs examples/ha's TestHA RUNS times (default 10; about 25 s each) and
# sums up its figures per scenario: the time the virtual IP took to move
# (kill -9 and hang of the holder's lbproxy), the client's outage (from the
# last answer before the first failed request to the first answer after
# the last one) and its failed requests, out of one every 50 ms. These are
# the figures of README.md's "High availability".
#
#	sudo ./scripts/ha.sh        # 10 runs
#	sudo RUNS=30 ./scripts/ha.sh
#
# Needs root, keepalived, iproute2 and curl (scripts/deps/ha.sh installs
# them as root). Stops at the first failed run, whose log it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10}
log=$(mktemp)
figures=$(mktemp)
trap 'rm -f "$log" "$figures"' EXIT
go test -c -o "${log}.test" ./examples/ha
trap 'rm -f "$log" "$figures" "${log}.test"' EXIT
for i in $(seq "$runs"); do
  if ! (cd examples/ha && CI=true "${log}.test" -test.run '^TestHA$' -test.count=1 -test.v) >"$log" 2>&1; then
    cat "$log" >&2
    echo "ha.sh: run $i of $runs failed" >&2
    exit 1
  fi
  grep -o 'figure .*' "$log" >>"$figures"
  echo "run $i: $(grep -o 'figure .*' "$log" | sed 's/^figure //' | tr '\n' ';')"
done
# Lines: "figure NAME: outage 2.207s, 33 of 37 requests failed[, IP moved after 1.965s]"
echo
echo "over $runs runs: min / median / max"
for name in kill-9 restart stall-1s hang; do
  for what in outage failed moved; do
    vals=$(grep "^figure $name:" "$figures" | case $what in
      outage) sed -n 's/.*outage \([0-9.]*\)\(m\?s\).*/\1 \2/p' ;;
      failed) sed -n 's/.*, \([0-9]*\) of .*/\1 n/p' ;;
      moved) sed -n 's/.*moved after \([0-9.]*\)\(m\?s\).*/\1 \2/p' ;;
    esac | awk '{ v = $1; if ($2 == "ms") v /= 1000; print v }' | sort -g)
    [ -n "$vals" ] || continue
    n=$(echo "$vals" | wc -l)
    printf '%-9s %-7s %s / %s / %s\n' "$name" "$what" \
      "$(echo "$vals" | head -1)" "$(echo "$vals" | sed -n "$(((n + 1) / 2))p")" "$(echo "$vals" | tail -1)"
  done
done
