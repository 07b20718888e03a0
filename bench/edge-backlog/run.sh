#!/usr/bin/env bash
# Starts a fresh `wrangler dev --local` on 127.0.0.1:$PORT (default 8791; the worker must be
# built: scripts/edge-build.sh) and runs non-reader.js against it, passing the PIDs of the
# workerd processes it started; stops it after. Arguments go to non-reader.js.
#   bash bench/edge-backlog/run.sh [SECONDS] [SENDERS]       B_READS=1 for the control
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-8791}
OUT=$PWD/target/edge
mkdir -p "$OUT"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true
export XDG_CONFIG_HOME=$OUT/config WRANGLER_LOG_PATH=$OUT/logs
rm -rf "$OUT/backlog-state"
setsid node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$PORT" \
    --persist-to "$OUT/backlog-state" >"$OUT/backlog-dev.log" 2>&1 </dev/null &
DEV=$!
trap 'kill -TERM -- -$DEV 2>/dev/null || true' EXIT
for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.5
done
PIDS=$(ps -o pid=,comm= -g "$DEV" | awk '$2 == "workerd" { print $1 }' | paste -sd,)
node bench/edge-backlog/non-reader.js "$PORT" "$PIDS" "$@"
