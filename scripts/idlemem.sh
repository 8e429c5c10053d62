#!/usr/bin/env bash
# Measures the memory of idle client connections: lbproxy (-mode http and
# -mode tcp), HAProxy (one thread) and a plain net/http + httputil proxy
# (the Go baseline, L7 only), one after the other in one run, against the
# same backends (an HTTP server and a TCP echo server, internal/cmd/idleconns).
# For each proxy: start it, sample its RSS (VmRSS, and Pss from
# smaps_rollup), open N connections through it with idleconns hold (one
# keep-alive request each at L7, one echoed line at L4), wait SETTLE
# seconds, sample again, close them. It reports KB per connection
# ((held - before) / N) and the ratio to HAProxy's. Loopback only; bounded:
# every wait has a deadline, and the whole run takes a few minutes.
#
#   scripts/idlemem.sh                      # N=10000 SETTLE=10 (N lowered to fit the descriptor limit)
#   N=5000 SETTLE=5 PROXIES="lbkit-http haproxy-http" scripts/idlemem.sh
#   LBPROXY_FLAGS="-gc-percent 100" scripts/idlemem.sh
#   PPROF_DIR=/tmp/prof PROXIES="lbkit-http lbkit-tcp" scripts/idlemem.sh   # + heap, goroutine profiles
#
# Installs haproxy (Debian) when missing, as root. Needs the file
# descriptors: it raises the limit of the shell (root: up to 1<<20).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
SETTLE=${SETTLE:-10}
PROXIES=${PROXIES:-"lbkit-http haproxy-http goproxy-http lbkit-tcp haproxy-tcp"}
BASE=${BASE_PORT:-18100}

if ! command -v haproxy >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null
  else
    echo "idlemem.sh: haproxy is missing (apt-get install haproxy)" >&2
    exit 1
  fi
fi
# A proxy holds 2 descriptors per connection (client and server side).
ulimit -n $((1 << 20)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fds=$(ulimit -n)
if [ "$fds" -lt $((2 * N + 1000)) ]; then
  N=$(((fds - 1000) / 2))
  echo "idlemem.sh: file descriptor limit $fds (cannot raise it): N lowered to $N" >&2
fi

work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# PPROF_DIR: build lbproxy with its profiling endpoint (-tags lbproxy_pprof)
# and save its heap and goroutine profiles there while the connections are
# held (after a forced collection, so they show what is live).
if [ -n "${PPROF_DIR:-}" ]; then
  export LBPROXY_PPROF=127.0.0.1:$((BASE + 9))
  go build -tags lbproxy_pprof -o "$work/lbproxy" ./examples/lbproxy
else
  go build -o "$work/lbproxy" ./examples/lbproxy
fi
go build -o "$work/idleconns" ./internal/cmd/idleconns

http_be=127.0.0.1:$BASE
echo_be=127.0.0.1:$((BASE + 1))
"$work/idleconns" backend -http "$http_be" -echo "$echo_be" >"$work/backend.log" 2>&1 &
pids+=($!)

cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn $((N + 100))
defaults
  timeout connect 5s
  timeout client 30m
  timeout server 30m
  timeout tunnel 30m
  timeout http-request 10s
  timeout http-keep-alive 30m
frontend fe_http
  mode http
  bind 127.0.0.1:$((BASE + 3))
  default_backend be_http
backend be_http
  mode http
  server s1 $http_be
frontend fe_tcp
  mode tcp
  bind 127.0.0.1:$((BASE + 4))
  default_backend be_tcp
backend be_tcp
  mode tcp
  server s1 $echo_be
CFG

# waitport ADDR: waits (10 s at most) until ADDR accepts connections.
waitport() {
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "idlemem.sh: nothing listens on $1" >&2
  return 1
}
# rss PID: "VmRSS Pss" in kB.
rss() {
  local r p
  r=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status")
  p=$(awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup")
  echo "$r $p"
}
waitport "$http_be"
waitport "$echo_be"

declare -A perconn steady held
phase=0
for name in $PROXIES; do
  # Each proxy's clients come from addresses of their own (127.0.P.1, ...):
  # the TIME_WAIT ports of the previous clients, and the ports the proxy
  # binds to reach the backends from 127.0.0.1, stay out of the way.
  phase=$((phase + 1))
  case $name in
    lbkit-http)   addr=127.0.0.1:$((BASE + 2)); mode=http; cmd=("$work/lbproxy" -mode http -listen "$addr" -backends "$http_be" ${LBPROXY_FLAGS:-}) ;;
    haproxy-http) addr=127.0.0.1:$((BASE + 3)); mode=http; cmd=(haproxy -db -f "$work/haproxy.cfg") ;;
    goproxy-http) addr=127.0.0.1:$((BASE + 5)); mode=http; cmd=("$work/idleconns" goproxy -listen "$addr" -backend "http://$http_be") ;;
    lbkit-tcp)    addr=127.0.0.1:$((BASE + 6)); mode=tcp;  cmd=("$work/lbproxy" -mode tcp -listen "$addr" -backends "$echo_be" ${LBPROXY_FLAGS:-}) ;;
    haproxy-tcp)  addr=127.0.0.1:$((BASE + 4)); mode=tcp;  cmd=(haproxy -db -f "$work/haproxy.cfg") ;;
    *) echo "idlemem.sh: unknown proxy $name" >&2; exit 1 ;;
  esac
  "${cmd[@]}" >"$work/$name.log" 2>&1 &
  ppid=$!
  pids+=($ppid)
  waitport "$addr" || { cat "$work/$name.log" >&2; exit 1; }
  sleep 1
  read -r b_rss b_pss < <(rss $ppid)
  "$work/idleconns" hold -mode $mode -addr "$addr" -n "$N" -source "127.0.$phase.1" >"$work/hold.log" 2>&1 &
  hpid=$!
  pids+=($hpid)
  for _ in $(seq 1800); do
    grep -q '^held' "$work/hold.log" && break
    kill -0 $hpid 2>/dev/null || { cat "$work/hold.log" >&2; tail -n 5 "$work/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q '^held' "$work/hold.log" || { echo "idlemem.sh: $name: connections not held in time" >&2; exit 1; }
  sleep "$SETTLE"
  read -r h_rss h_pss < <(rss $ppid)
  if [ -n "${PPROF_DIR:-}" ] && [ "${name%-*}" = lbkit ]; then
    mkdir -p "$PPROF_DIR"
    curl -s -o "$PPROF_DIR/$name.heap" "http://$LBPROXY_PPROF/debug/pprof/heap?gc=1" || true
    curl -s -o "$PPROF_DIR/$name.goroutine" "http://$LBPROXY_PPROF/debug/pprof/goroutine?debug=1" || true
    curl -s -o "$PPROF_DIR/$name.memstats" "http://$LBPROXY_PPROF/debug/pprof/heap?debug=1&gc=1" || true
  fi
  kill $hpid; wait $hpid 2>/dev/null || true
  kill $ppid; wait $ppid 2>/dev/null || true
  steady[$name]=$b_rss
  held[$name]=$h_rss
  perconn[$name]=$(awk -v a="$b_rss" -v b="$h_rss" -v n="$N" 'BEGIN {printf "%.2f", (b - a) / n}')
  printf '%-13s before %7d kB (Pss %7d)  held %7d kB (Pss %7d)  %6s kB per connection\n' \
    "$name" "$b_rss" "$b_pss" "$h_rss" "$h_pss" "${perconn[$name]}"
done

echo
echo "N=$N SETTLE=${SETTLE}s $(date -u +%Y-%m-%dT%H:%MZ)"
printf '| proxy | steady RSS kB | held RSS kB | kB per connection | vs HAProxy |\n|---|---:|---:|---:|---:|\n'
for name in $PROXIES; do
  ref=${perconn[haproxy-${name#*-}]:-}
  ratio=-
  [ -n "$ref" ] && ratio=$(awk -v a="${perconn[$name]}" -v b="$ref" 'BEGIN {printf "%.2f", a / b}')
  printf '| %s | %d | %d | %s | %s |\n' "$name" "${steady[$name]}" "${held[$name]}" "${perconn[$name]}" "$ratio"
done
