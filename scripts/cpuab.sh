#!/usr/bin/env bash
# A/B of lbproxy's CPU per request between two builds, in alternated runs:
# each run starts the harness's two backends and the load generator on
# CPU 0 and lbproxy on CPU 1, and reads lbproxy's utime + stime from
# /proc/PID/stat around the measured load. Alternating A and B in pairs
# makes the ratio of their means robust to the machine's slow drifts,
# which move absolute figures by ±20% here; within a pair, compare.
#
#   scripts/cpuab.sh OLD_REV NEW_REV            # two revisions of this repository
#   A=/tmp/lbproxy-a B=/tmp/lbproxy-b scripts/cpuab.sh   # two lbproxy binaries
#
# Knobs: SCENARIO (b c e i g p, the harness's letters; default b), PAIRS
# (default 4), DUR (seconds of measured load per run, default 8), BENCH_DIR
# (the harness, for its backend and tlsload; default ../shared/bench).
# Needs wrk (b c e i), h2load (g), taskset, openssl, go. Traffic goes to
# 127.0.0.1 only; every load run is bounded by DUR and timeout(1).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${BENCH_DIR:-../shared/bench}
scenario=${SCENARIO:-b}
pairs=${PAIRS:-4}
dur=${DUR:-8}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${worktree:-}" ]; then git worktree remove --force "$worktree" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

build() { # build REV OUT: lbproxy at a revision of this repository
  worktree=$work/tree
  git worktree add --detach "$worktree" "$1" >/dev/null 2>&1
  (cd "$worktree" && go build -o "$2" ./examples/lbproxy)
  git worktree remove --force "$worktree" >/dev/null
  worktree=
}
if [ -n "${A:-}" ] && [ -n "${B:-}" ]; then
  a=$A b=$B
elif [ $# -eq 2 ]; then
  build "$1" "$work/lbproxy-a"; build "$2" "$work/lbproxy-b"
  a=$work/lbproxy-a b=$work/lbproxy-b
else
  echo "usage: scripts/cpuab.sh OLD_REV NEW_REV, or A=BIN B=BIN scripts/cpuab.sh" >&2
  exit 2
fi
(cd "$src" && go build -o "$work/backend" ./backend && go build -o "$work/tlsload" ./tlsload)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

listen=127.0.0.1:27100
plain=127.0.0.1:27001,127.0.0.1:27002
tls=127.0.0.1:27011,127.0.0.1:27012
case $scenario in
  b) mode=(-mode http -backends $plain) load=(wrk -t1 -c64 "http://$listen/") ;;
  c) mode=(-mode http -backends $plain) load=(wrk -t1 -c64 -H "Connection: close" "http://$listen/") ;;
  e) mode=(-mode https -backends $plain) load=(wrk -t1 -c64 "https://$listen/") ;;
  i) mode=(-mode https-bridge -backend-insecure -backends $tls) load=(wrk -t1 -c64 "https://$listen/") ;;
  g) mode=(-mode https -backends $plain) load=(h2load -t1 -c16 -m16 "https://$listen/") ;;
  p) mode=(-mode tls-passthrough -backends $tls) load=("$work/tlsload" -c 32) ;;
  *) echo "cpuab.sh: unknown SCENARIO $scenario" >&2; exit 2 ;;
esac

# requests prints the requests a load run's output reports.
requests() {
  case $scenario in
    g) awk '/^requests:/{print $2}' "$1" ;;
    p) grep -oE 'requests=[0-9]+' "$1" | cut -d= -f2 ;;
    *) awk '/requests in/{print $1}' "$1" ;;
  esac
}
# loadrun SECONDS OUT: one bounded run of the load generator on CPU 0.
loadrun() {
  local d=$1 out=$2
  case $scenario in
    g) timeout $((d + 10)) taskset -c 0 "${load[@]:0:4}" -D "$d" "${load[@]:4}" >"$out" 2>&1 ;;
    p) timeout $((d + 10)) taskset -c 0 "${load[@]}" -d "${d}s" >"$out" 2>&1 ;;
    *) timeout $((d + 10)) taskset -c 0 "${load[@]:0:3}" -d"${d}s" "${load[@]:3}" >"$out" 2>&1 ;;
  esac
}
# run BIN OUT: writes user and system µs per request of one run to OUT.
run() {
  local bin=$1 lp
  taskset -c 0 "$work/backend" -name be1 -listen 127.0.0.1:27001 -tls-listen 127.0.0.1:27011 \
    -cert "$work/cert.pem" -key "$work/key.pem" >/dev/null 2>&1 & pids+=($!)
  taskset -c 0 "$work/backend" -name be2 -listen 127.0.0.1:27002 -tls-listen 127.0.0.1:27012 \
    -cert "$work/cert.pem" -key "$work/key.pem" >/dev/null 2>&1 & pids+=($!)
  sleep 0.5
  taskset -c 1 "$bin" -listen $listen "${mode[@]}" -cert "$work/cert.pem" -key "$work/key.pem" >"$work/lbproxy.log" 2>&1 &
  lp=$!; pids+=($lp)
  sleep 1
  loadrun 2 "$work/warm.txt"
  read -r u0 s0 < <(awk '{print $14, $15}' /proc/$lp/stat)
  loadrun "$dur" "$work/load.txt"
  read -r u1 s1 < <(awk '{print $14, $15}' /proc/$lp/stat)
  local n; n=$(requests "$work/load.txt")
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "cpuab.sh: no requests counted" >&2; cat "$work/load.txt" >&2; exit 1; }
  local hz; hz=$(getconf CLK_TCK)
  awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$n" -v hz="$hz" \
    'BEGIN { printf "%.2f %.2f\n", u * 1e6 / hz / n, s * 1e6 / hz / n }' >"$2"
}

echo "scenario $scenario, $pairs pairs of ${dur} s: µs of lbproxy CPU per request (user + sys)"
: >"$work/a.txt"; : >"$work/b.txt"
for i in $(seq "$pairs"); do
  run "$a" "$work/run.txt"; read -r ua sa <"$work/run.txt"; echo "$ua $sa" >>"$work/a.txt"
  run "$b" "$work/run.txt"; read -r ub sb <"$work/run.txt"; echo "$ub $sb" >>"$work/b.txt"
  awk -v i="$i" -v ua="$ua" -v sa="$sa" -v ub="$ub" -v sb="$sb" 'BEGIN {
    printf "pair %d: A %.2f (%.2f + %.2f)  B %.2f (%.2f + %.2f)  B/A %.3f\n", i, ua + sa, ua, sa, ub + sb, ub, sb, (ub + sb) / (ua + sa) }'
done
paste "$work/a.txt" "$work/b.txt" | awk '{ a += $1 + $2; b += $3 + $4; n++ }
  END { printf "mean: A %.2f  B %.2f  B/A %.3f\n", a / n, b / n, b / a }'
