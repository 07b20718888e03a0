#!/usr/bin/env bash
# The edge host's benchmark (not a test): the Rust worker and the JavaScript reference
# (bench/edge-reference/: the same relay-and-object shape doing only what `fanout` needs), each
# under its own `wrangler dev --local` on this machine, the same `sessionserver-bench fanout`
# scenarios against both, alternating, several runs each; prints a table of CPU per delivery
# (the workerd process that runs the worker and its objects; wrangler's proxy is not counted,
# a deployment has none), latency and losses, the ratio of the two, and the cost model built
# from them (BENCHMARKS.md, "Edge host: cost"). 127.0.0.1 only.
#
#   scripts/edge-bench.sh             3 runs of each scenario on both paths (about 16 minutes)
#   scripts/edge-bench.sh --runs 1    one run each
#   EDGE_BENCH_PORT=8880              the Rust worker's port (the reference's is one above)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
runs=3
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
PORT=${EDGE_BENCH_PORT:-8880}
REF_PORT=$((PORT + 1))
OUT=$ROOT/target/edge-bench
mkdir -p "$OUT"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true
export XDG_CONFIG_HOME=$OUT/config WRANGLER_LOG_PATH=$OUT/logs

# Sessions × players × updates per second per player. The last is the local collapse of
# issue 15 (20,000 deliveries/s on one workerd).
scenarios=("1 10 10" "1 10 20" "10 10 2" "10 10 20")

echo "== build: the worker, the generator (release)" >&2
[ -x node_modules/.bin/wrangler ] || npm ci --no-audit --no-fund >&2
bash scripts/edge-build.sh >&2
cargo build --release -p sessionserver-bench >&2
mkdir -p "$OUT/bin"
cp target/release/sessionserver-bench "$OUT/bin/"
bench=$OUT/bin/sessionserver-bench
# The Rust worker from a copy of its build, so that wrangler's rebuild-on-change never runs.
rm -rf "$OUT/rust" && mkdir -p "$OUT/rust/worker"
cp -r worker/build "$OUT/rust/worker/build"
sed -e '/^\[build\]/,/^$/d' wrangler.toml >"$OUT/rust/wrangler.toml"

# The wrangler process groups started, one a line (a file: `start` runs in a subshell).
: >"$OUT/pids"
stop_all() {
    while read -r p; do kill -TERM -- "-$p" 2>/dev/null || true; done <"$OUT/pids"
    sleep 1
    while read -r p; do kill -KILL -- "-$p" 2>/dev/null || true; done <"$OUT/pids"
}
trap stop_all EXIT
# start NAME CONFIG PORT: wrangler dev on fresh storage; prints the PID of the workerd that
# runs the worker (not the proxy, which listens on PORT).
start() {
    local name=$1 config=$2 port=$3
    rm -rf "$OUT/$name-state"
    setsid node_modules/.bin/wrangler dev --local --config "$config" --ip 127.0.0.1 \
        --port "$port" --persist-to "$OUT/$name-state" >"$OUT/$name.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >>"$OUT/pids"
    for _ in $(seq 1 240); do
        if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
        kill -0 "$pid" 2>/dev/null || { cat "$OUT/$name.log" >&2; exit 1; }
        sleep 0.5
    done
    local w
    for w in $(pgrep -g "$pid" workerd); do
        if ! tr '\0' ' ' <"/proc/$w/cmdline" | grep -q "entry=127.0.0.1:$port "; then
            echo "$w"
            return
        fi
    done
    echo "no worker process under wrangler $pid" >&2
    exit 1
}
rust_pid=$(start rust "$OUT/rust/wrangler.toml" "$PORT")
ref_pid=$(start reference bench/edge-reference/wrangler.toml "$REF_PORT")
echo "== Rust worker: workerd $rust_pid on $PORT; JavaScript reference: workerd $ref_pid on $REF_PORT" >&2

results=$OUT/results-$(date +%Y%m%d-%H%M%S).txt
: >"$results"
for run in $(seq 1 "$runs"); do
    for s in "${scenarios[@]}"; do
        read -r sessions players rate <<<"$s"
        # Each server on both paths: the relay (ws://host/) and the direct path (--direct:
        # /session/new and /session/<id>).
        for server in rust reference rust-direct reference-direct; do
            case $server in
                rust*) url=ws://127.0.0.1:$PORT/ pid=$rust_pid ;;
                *) url=ws://127.0.0.1:$REF_PORT/ pid=$ref_pid ;;
            esac
            direct=()
            [[ $server = *-direct ]] && direct=(--direct)
            echo "== run $run: $server, $sessions × $players players × $rate/s" >&2
            line=$("$bench" fanout --url "$url" --server "$server" --server-pid "$pid" "${direct[@]}" \
                --scenario "edge-$sessions-$players-$rate" --sessions "$sessions" --players "$players" \
                --rate "$rate" --duration 10 --warmup 2 --drain-timeout 5 2>>"$OUT/bench.log" | grep '^RESULT' || true)
            echo "${line:-RESULT scenario=edge-$sessions-$players-$rate server=$server failed=yes} run=$run load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$results" >&2
        done
    done
done

# The table: medians per scenario and server, the ratio, and the cost model.
python3 - "$results" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    f = dict(kv.split('=', 1) for kv in line.split()[1:] if '=' in kv)
    rows.setdefault((f['scenario'], f['server']), []).append(f)
def med(key, rs):
    v = [float(r[key]) for r in rs if key in r]
    return statistics.median(v) if v else float('nan')
print(f"\nRaw lines: {sys.argv[1]}\n")
print("| path | sessions × players × updates/s | deliveries/s offered | Rust worker: CPU µs/delivery (runs) | JS reference: CPU µs/delivery (runs) | Rust / JS | p50 / p99 ms, Rust | p50 / p99 ms, JS | lost, Rust / JS |")
print("|---|---|---:|---|---|---:|---|---|---|")
costs = {}
for path, suffix in (("relay", ""), ("direct", "-direct")):
  for scenario in dict.fromkeys(s for s, _ in rows):
    r, j = rows.get((scenario, 'rust' + suffix), []), rows.get((scenario, 'reference' + suffix), [])
    if not r and not j:
        continue
    cr, cj = med('cpu_us_per_delivery', r), med('cpu_us_per_delivery', j)
    runs = lambda rs: ", ".join(r.get('cpu_us_per_delivery', 'failed') for r in rs)
    lost = lambda rs: "+".join(r.get('lost', '?') for r in rs)
    lat = lambda rs: f"{med('p50_us', rs)/1000:.1f} / {med('p99_us', rs)/1000:.1f}"
    _, s, p, u = scenario.split('-')
    offered = int(s) * int(p) * int(p) * float(u)
    print(f"| {path} | {s} × {p} × {u} | {offered:,.0f} | {cr:.0f} ({runs(r)}) | {cj:.0f} ({runs(j)}) | {cr/cj:.2f} | {lat(r)} | {lat(j)} | {lost(r)} / {lost(j)} |")
    costs[(path, int(p), float(u), int(s))] = (cr, cj)
# Published prices (Workers Paid, 2026): Worker CPU $0.02 per million ms; Durable Object requests
# $0.15 per million (incoming WebSocket messages count 1 in 20); duration $12.50 per million
# GB-s at 128 MB while the object cannot hibernate; SQLite rows written $1.00 per million.
# Relay path: every measured CPU µs is counted at the Worker CPU price (the relay's share is;
# the object's is not billed as CPU, so this is an upper bound). Direct path: no Worker runs
# after the upgrade, and an object's CPU is within its duration: CPU costs nothing extra.
print("\nCost of one 10-player session in which every player sends U updates/s (each delivered to the 10 members):\n")
print("| path | U | deliveries per session-hour | CPU (measured µs/delivery) | DO requests | DO duration | rows written | total per session-hour | per player-hour | per million deliveries |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for path in ("relay", "direct"):
  for u in (10.0, 20.0):
    key = (path, 10, u, 1)
    if key not in costs:
        continue
    cpu_us = costs[key][0]
    deliveries = 10 * u * 10 * 3600
    cpu = deliveries * cpu_us / 1000 * 0.02e-6 if path == "relay" else 0.0
    requests = 10 * u * 3600 / 20 * 0.15e-6
    duration = 0.125 * 3600 * 12.50e-6
    rows_cost = 3600 * 1.00e-6  # at most one row per session per second
    total = cpu + requests + duration + rows_cost
    print(f"| {path} | {u:.0f} | {deliveries:,.0f} | ${cpu:.4f} ({cpu_us:.0f} µs) | ${requests:.4f} | ${duration:.4f} | ${rows_cost:.4f} | ${total:.4f} | ${total/10:.5f} | ${total/deliveries*1e6:.4f} |")
PY
