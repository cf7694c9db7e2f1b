#!/usr/bin/env bash
# Benchmarks the gateway against a direct connection and nginx, back to back, on loopback:
#   1. ping-pong: CONNS connections (default 50) each echoing a 64-byte message for SECS seconds
#      (default 10): round trips/s, p50/p99 round-trip time, gateway CPU per round trip;
#   2. idle: IDLE connections (default 9000) opened and held: gateway RSS per proxied connection.
# The backend is `echo-backend` (tokio-tungstenite). nginx is Debian's package, configured as a
# plain WebSocket reverse proxy (installed with apt when missing).
# Usage: scripts/bench.sh        Prints a Markdown table (also saved to target/bench/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-50}; SECS=${SECS:-10}; IDLE=${IDLE:-9000}; SIZE=64
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
target/release/runtime "$WORK/specs" --listen 127.0.0.1:$GW --admin-listen 127.0.0.1:$GW_ADMIN \
  --max-connections 20000 --max-connections-per-api 20000 --log-format json 2>/dev/null &
GW_PID=$!
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

row() { # name url pids...
  local name=$1 url=$2; shift 2
  local before after out
  before=$(cpu "$@")
  out=$(target/release/load pingpong "$url" "$CONNS" "$SECS" "$SIZE")
  after=$(cpu "$@")
  python3 - "$name" "$out" "$before" "$after" "$TICK" <<'PY'
import json, sys
name, out, before, after, tick = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
cpu_s = (after - before) / tick
us = cpu_s / out["roundTrips"] * 1e6 if out["roundTrips"] else 0
print(f"| {name} | {out['perSecond']:.0f} | {out['p50us']:.0f} | {out['p99us']:.0f} | " + (f"{us:.1f}" if name != "direct" else "–") + " |")
PY
}

# Warm up each path briefly, then measure.
target/release/load pingpong "ws://127.0.0.1:$GW/bench/1/echo" 10 1 $SIZE >/dev/null
target/release/load pingpong "ws://127.0.0.1:$NG/" 10 1 $SIZE >/dev/null
{
echo "### Ping-pong: $CONNS connections × $SIZE-byte messages, ${SECS}s each"
echo
echo "| path | round trips/s | p50 µs | p99 µs | proxy CPU µs per round trip |"
echo "|---|---|---|---|---|"
row direct "ws://127.0.0.1:$ECHO/" 
row portico "ws://127.0.0.1:$GW/bench/1/echo" $GW_PID
row nginx "ws://127.0.0.1:$NG/" $(nginx_pids)
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
idle nginx "ws://127.0.0.1:$NG/" $(nginx_pids)
} | tee "$WORK/idle.md"
{
  echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores; $(uname -r)."
  echo
  cat "$WORK/pingpong.md" "$WORK/idle.md"
} > target/bench/results.md
