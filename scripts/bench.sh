#!/usr/bin/env bash
# Benchmarks the gateway against a direct connection and nginx, back to back, on loopback:
#   1. ping-pong: CONNS connections (default 50) each echoing a SIZE-byte message (default 64) for
#      SECS seconds (default 10): round trips/s, p50/p99 round-trip time, proxy CPU per round trip
#      (user+system over all the proxy's processes);
#   2. idle: IDLE connections (default 9900) opened and held: proxy RSS per proxied connection.
# MATRIX=1 adds 1 KiB and 64 KiB messages and 1,000 connections. TOOL picks the load generator:
# `rust` (tests/src/bin/load.rs, tokio-tungstenite; the default), `python` (scripts/pingpong.py,
# Python `websockets`; an independent implementation, see docs/benchmarks.md) or `both`.
# Portico is measured twice: its plain route and the same route with a per-client message bucket.
# The backend is `echo-backend` (tokio-tungstenite). nginx is Debian's package, configured as a
# plain WebSocket reverse proxy (installed with apt when missing).
# BASELINE=path/to/another/runtime adds that build as a "baseline" row to every table, in the same
# run (e.g. the commit before a change: `git worktree add` it and `cargo build --release`).
# Usage: scripts/bench.sh        Prints Markdown tables (also saved to target/bench/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-50}; SECS=${SECS:-10}; IDLE=${IDLE:-9900}; SIZE=${SIZE:-64}; TOOL=${TOOL:-rust}
PY=python3; [ -x target/ci/venv/bin/python ] && PY=target/ci/venv/bin/python
ulimit -n 20000
cargo build --release -q -p portico-runtime --bin runtime -p portico-tests --bin echo-backend --bin load
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "bench: installing nginx" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null 2>&1 \
    || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
WORK=$(mktemp -d); mkdir -p target/bench
cleanup() { kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
ECHO=$(free_port); GW=$(free_port); GW_ADMIN=$(free_port); NG=$(free_port)

target/release/echo-backend 127.0.0.1:$ECHO &
mkdir -p "$WORK/specs"
cat > "$WORK/specs/bench.yaml" <<YAML
asyncapi: 3.0.0
info: {title: Bench, version: '1'}
x-gateway: {context: /bench, endpoints: {production: 'ws://127.0.0.1:$ECHO'}}
channels:
  echo: {address: /echo, x-auth-type: None, x-uri-mapping: /}
YAML
# The same API with a per-client message bucket too large to refuse anything: the cost of a
# policy on the frame relay (one bucket draw per message).
cat > "$WORK/specs/bench-bucket.yaml" <<YAML
asyncapi: 3.0.0
info: {title: Bench bucket, version: '1'}
x-gateway: {context: /bucket, endpoints: {production: 'ws://127.0.0.1:$ECHO'}, throttling: {client: {messages: 1G/s}}}
channels:
  echo: {address: /echo, x-auth-type: None, x-uri-mapping: /}
YAML
target/release/runtime "$WORK/specs" --listen 127.0.0.1:$GW --admin-listen 127.0.0.1:$GW_ADMIN \
  --max-connections 20000 --max-connections-per-api 20000 --log-format json 2>/dev/null &
GW_PID=$!
if [ -n "${BASELINE:-}" ]; then
  BASE=$(free_port); BASE_ADMIN=$(free_port)
  "$BASELINE" "$WORK/specs" --listen 127.0.0.1:$BASE --admin-listen 127.0.0.1:$BASE_ADMIN \
    --max-connections 20000 --max-connections-per-api 20000 --log-format json 2>/dev/null &
  BASE_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$BASE_ADMIN/readyz" >/dev/null && break; sleep 0.1; done
fi
cat > "$WORK/nginx.conf" <<CONF
worker_processes auto;
worker_rlimit_nofile 20000;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:$NG;
    location / {
      proxy_pass http://127.0.0.1:$ECHO;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_read_timeout 1h;
    }
  }
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW_ADMIN/readyz" >/dev/null && [ -f "$WORK/nginx.pid" ] && break; sleep 0.1; done
NGINX_MASTER=$(cat "$WORK/nginx.pid")

# CPU seconds (user+sys) of a process and its children processes by pid list.
cpu() { local t=0; for p in "$@"; do t=$(awk -v t=$t '{print t + $14 + $15}' /proc/$p/stat); done; echo "$t"; }
rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' /proc/$p/status))); done; echo $t; }
nginx_pids() { echo "$NGINX_MASTER $(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')"; }
TICK=$(getconf CLK_TCK)

run_load() { # tool url conns secs size
  case $1 in
    rust) target/release/load pingpong "$2" "$3" "$4" "$5" ;;
    python) "$PY" scripts/pingpong.py "$2" "$3" "$4" "$5" ;;
  esac
}

row() { # tool conns size name url pids...
  local tool=$1 conns=$2 size=$3 name=$4 url=$5; shift 5
  local before after out
  before=$(cpu "$@")
  out=$(run_load "$tool" "$url" "$conns" "$SECS" "$size")
  after=$(cpu "$@")
  python3 - "$name" "$out" "$before" "$after" "$TICK" <<'PY'
import json, sys
name, out, before, after, tick = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
cpu_s = (after - before) / tick
us = cpu_s / out["roundTrips"] * 1e6 if out["roundTrips"] else 0
print(f"| {name} | {out['perSecond']:.0f} | {out['p50us']:.0f} | {out['p99us']:.0f} | " + (f"{us:.1f}" if name != "direct" else "–") + " |")
PY
}

table() { # tool conns size
  local tool=$1 conns=$2 size=$3
  echo "### Ping-pong ($tool load tool): $conns connections × $size-byte messages, ${SECS}s each"
  echo
  echo "| path | round trips/s | p50 µs | p99 µs | proxy CPU µs per round trip |"
  echo "|---|---|---|---|---|"
  row "$tool" "$conns" "$size" direct "ws://127.0.0.1:$ECHO/"
  row "$tool" "$conns" "$size" portico "ws://127.0.0.1:$GW/bench/1/echo" $GW_PID
  row "$tool" "$conns" "$size" "portico, message bucket" "ws://127.0.0.1:$GW/bucket/1/echo" $GW_PID
  if [ -n "${BASELINE:-}" ]; then row "$tool" "$conns" "$size" baseline "ws://127.0.0.1:$BASE/bench/1/echo" $BASE_PID; fi
  row "$tool" "$conns" "$size" nginx "ws://127.0.0.1:$NG/" $(nginx_pids)
  echo
}

# Warm up each path briefly, then measure.
target/release/load pingpong "ws://127.0.0.1:$GW/bench/1/echo" 10 1 $SIZE >/dev/null
target/release/load pingpong "ws://127.0.0.1:$NG/" 10 1 $SIZE >/dev/null
TOOLS=$TOOL; [ "$TOOL" = both ] && TOOLS="rust python"
{
for tool in $TOOLS; do
  table "$tool" "$CONNS" "$SIZE"
  if [ "${MATRIX:-0}" = 1 ]; then
    table "$tool" "$CONNS" 1024
    table "$tool" "$CONNS" 65536
    table "$tool" 1000 "$SIZE"
  fi
done
} | tee "$WORK/pingpong.md"

idle() { # name url pids...
  local name=$1 url=$2; shift 2
  sleep 1
  local base; base=$(rss_kb "$@")
  target/release/load idle "$url" "$IDLE" 8 > "$WORK/idle.out" &
  local lp=$!
  for _ in $(seq 600); do grep -q open "$WORK/idle.out" 2>/dev/null && break; sleep 0.1; done
  sleep 2
  local full; full=$(rss_kb "$@")
  local opened; opened=$(python3 -c "import json;print(json.load(open('$WORK/idle.out'))['open'])")
  wait $lp
  python3 -c "
base, full, n = $base, $full, $opened
print(f'| $name | {n} | {base/1024:.1f} | {full/1024:.1f} | {(full-base)*1024/max(n,1)/1024:.1f} |')"
}
{
echo
echo "### Idle: $IDLE proxied connections held open"
echo
echo "| proxy | connections | RSS before MiB | RSS with connections MiB | KiB per connection |"
echo "|---|---|---|---|---|"
idle portico "ws://127.0.0.1:$GW/bench/1/echo" $GW_PID
if [ -n "${BASELINE:-}" ]; then idle baseline "ws://127.0.0.1:$BASE/bench/1/echo" $BASE_PID; fi
idle nginx "ws://127.0.0.1:$NG/" $(nginx_pids)
} | tee "$WORK/idle.md"
{
  echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; $(uname -r)."
  echo
  cat "$WORK/pingpong.md" "$WORK/idle.md"
} > target/bench/results.md
