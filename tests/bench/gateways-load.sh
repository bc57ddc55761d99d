#!/usr/bin/env bash
# Load benchmark for GET /api/v1/gateways: a release gatewarden on a scratch database,
# wrk (Debian package) as a second process on loopback, bounded in time.
# Usage: tests/bench/gateways-load.sh [seconds=20] [connections=32]
# Needs: make run's build (target/release/gatewarden), apt-get install wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
conns=${2:-32}
bin=${CARGO_TARGET_DIR:-target}/release/gatewarden
port=3181
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
GATEWARDEN_ADMIN_PASSWORD=bench-password-123 RUST_LOG=warn \
  "$bin" --listen 127.0.0.1:$port --database-url "sqlite:$dir/gw.db" --scenario traffic-surge >/dev/null &
pid=$!
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
cookie=$(curl -s -o /dev/null -D - -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bench-password-123"}' http://127.0.0.1:$port/api/v1/session |
  awk -F': ' 'tolower($1)=="set-cookie"{split($2,a,";"); print a[1]}')
echo "wrk: $conns connections, 2 threads, ${secs}s, GET /api/v1/gateways (signed in as admin)"
wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Cookie: $cookie" "http://127.0.0.1:$port/api/v1/gateways"
echo "server RSS after load: $(ps -o rss= -p $pid | awk '{printf "%.1f MB", $1/1024}')"
