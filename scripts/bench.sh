#!/usr/bin/env bash
# The benchmark (not a test): runs the same scenarios, one after the other on this machine,
# against the native server and against the original npm package sessionserver@0.2.5, several
# times each, and prints a table of medians side by side. See BENCHMARKS.md.
#
#   scripts/bench.sh              full run (about 15 minutes on 2 cores)
#   scripts/bench.sh --quick      seconds per scenario, small sizes (about 6 minutes)
#   scripts/bench.sh --runs 5     more runs per figure (default: 3 full, 1 quick)
#   scripts/bench.sh --only native   one server only (native or original; the three reference
#                                    servers run with native)
#   scripts/bench.sh --table target/bench/results-....txt   only print the table of a past run
#
# Every generator run prints one `RESULT key=value ...` line; all of them are kept in
# target/bench/results-<time>.txt. Servers and clients use 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

mode=full
runs=
only=
table_only=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --runs) runs="$2"; shift ;;
    --only) only="$2"; shift ;;
    --table) table_only="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$mode" = quick ]; then
  runs=${runs:-1}
  fan_duration=3; fan_warmup=1
  idle_players=2000
  churn_duration=3; churn_warmup=1
  big_players=200
  max_duration=3; max_warmup=1
  max_ladder="10 25 50 100 150 200 300"
  floor_duration=2
else
  runs=${runs:-3}
  fan_duration=10; fan_warmup=2
  idle_players=10000
  churn_duration=10; churn_warmup=2
  big_players=1000
  max_duration=5; max_warmup=2
  # Sessions of 10 players, 10 updates/s each: 1,000 deliveries/s per session.
  max_ladder="10 25 50 75 100 125 150 175 200 250 300 350 400 450 500 600"
  floor_duration=5
fi
servers="original native"
[ -n "$only" ] && servers="$only"

if [ -z "$table_only" ]; then

# 10,000 idle players need 10,000 descriptors in the server and as many in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((idle_players + 1000)) ]; then
  echo "warning: ulimit -n is $(ulimit -n); the idle scenario needs more than $idle_players" >&2
fi

step() { printf '\n==> %s\n' "$*" >&2; }

step "build: the native server and the generator (release)"
cargo build --release -p native -p sessionserver-bench >&2
# Copies, so that a rebuild in this checkout during the run does not change what is measured.
mkdir -p target/bench/bin
cp target/release/sessionserver target/release/sessionserver-bench target/bench/bin/
native_bin=target/bench/bin/sessionserver
bench_bin=target/bench/bin/sessionserver-bench

mkdir -p target/bench
results="target/bench/results-$(date +%Y%m%d-%H%M%S).txt"
: > "$results"

orig_dir=
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if [ -n "$orig_dir" ]; then rm -rf "$orig_dir"; fi
}
trap cleanup EXIT

if [[ " $servers " == *" original "* ]]; then
  step "install the original: npm sessionserver@0.2.5 into a temporary folder"
  orig_dir=$(mktemp -d)
  # Its dependency http@0.0.0 is gone from the registry; Node's built-in `http` is what it
  # loads anyway, so an empty local package stands in for it.
  mkdir -p "$orig_dir/empty-http"
  echo '{"name":"http","version":"0.0.0"}' > "$orig_dir/empty-http/package.json"
  cat > "$orig_dir/package.json" <<'EOF'
{
  "name": "sessionserver-original-bench",
  "private": true,
  "dependencies": { "sessionserver": "0.2.5" },
  "overrides": { "http": "file:./empty-http" }
}
EOF
  # Run as its users run it (its README): import it and call SessionServer.Create(port).
  cat > "$orig_dir/server.mjs" <<'EOF'
import { SessionServer } from "sessionserver";
SessionServer.Create(Number(process.argv[2]));
EOF
  (cd "$orig_dir" && npm install --no-audit --no-fund --loglevel=error >&2)
fi

port=17300
# Starts a fresh server; sets server_pid and url.
start_server() {
  port=$((port + 1))
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  case "$1" in
    native)
      (RUST_LOG=warn exec "$native_bin" --port "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
      ;;
    reference)
      # The bare single-threaded tokio-tungstenite fan-out server (bench/src/bare_server.rs),
      # the reference point the CPU target was set against; it speaks only the fan-out.
      (exec "$bench_bin" bare-server --port "$port" >/dev/null 2>&1) &
      ;;
    relay)
      # The least an event-driven fan-out server does per update (bench/src/relay_server.rs):
      # one epoll thread, one recv per update, one send per delivery; only the fan-out too.
      (exec "$bench_bin" relay-server --port "$port" >/dev/null 2>&1) &
      ;;
    tokio-relay)
      # The relay's work on a tokio current-thread runtime (bench/src/tokio_relay.rs): what
      # the runtime itself adds per update; only the fan-out too.
      (exec "$bench_bin" tokio-relay-server --port "$port" >/dev/null 2>&1) &
      ;;
    original)
      # Its console output (a line per message) goes to /dev/null, as a quiet deployment would.
      (cd "$orig_dir" && exec node server.mjs "$port" >/dev/null 2>&1) &
      ;;
  esac
  server_pid=$!
  url="ws://127.0.0.1:$port/"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server $1 did not start on port $port" >&2
  return 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# Runs the generator; its RESULT line goes to the results file (tagged with the run) and to
# stdout of this function.
bench() {
  local line
  if ! line=$(timeout 900 "$bench_bin" "$@" | grep '^RESULT '); then
    line="RESULT scenario=$1 failed=yes"
  fi
  echo "$line run=$run" >> "$results"
  echo "$line" >&2
  echo "$line"
}

# The value of key $1 in a RESULT line on stdin.
field() { grep -o " $1=[^ ]*" | head -1 | cut -d= -f2; }

# The 50,000 deliveries/s fan-out against a fresh server $1 (also the reference servers).
fanout50k() {
  start_server "$1"
  bench fanout --url "$url" --server "$1" --server-pid "$server_pid" \
    --scenario fanout50k --sessions 100 --players 10 --rate 5 \
    --duration "$fan_duration" --warmup "$fan_warmup" >/dev/null
  stop_server
}

echo "#meta mode=$mode runs=$runs started=$(date -u '+%Y-%m-%dT%H:%MZ') load_before=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)" >> "$results"
for run in $(seq "$runs"); do
  step "run $run of $runs: loopback write floor (1,000 sockets, 50,000 writes/s of 120 bytes)"
  bench floor --sockets 1000 --rate 50000 --size 120 --duration "$floor_duration" >/dev/null

  if [[ " $servers " == *" native "* ]]; then
    # The reference servers at the same load: what the kernel work around each update costs
    # (relay), what tokio adds to it (tokio-relay), and what the design the CPU target was
    # set against costs (reference).
    for ref in relay tokio-relay reference; do
      step "run $run: $ref server: fan-out at 50,000 deliveries/s (for comparison)"
      fanout50k "$ref"
    done
  fi

  for server in $servers; do
    step "run $run: $server: fan-out at 50,000 deliveries/s (100 sessions x 10 players x 5/s)"
    fanout50k "$server"

    step "run $run: $server: one session of $big_players players, 10 updates/s in total"
    start_server "$server"
    bench fanout --url "$url" --server "$server" --server-pid "$server_pid" \
      --scenario bigsession --sessions 1 --players "$big_players" --session-rate 10 \
      --duration "$fan_duration" --warmup "$fan_warmup" >/dev/null
    stop_server

    step "run $run: $server: $idle_players idle players"
    start_server "$server"
    bench idle --url "$url" --server "$server" --server-pid "$server_pid" \
      --players "$idle_players" >/dev/null
    stop_server

    step "run $run: $server: churn (32 cycles in flight)"
    start_server "$server"
    bench churn --url "$url" --server "$server" --server-pid "$server_pid" \
      --concurrency 32 --duration "$churn_duration" --warmup "$churn_warmup" >/dev/null
    stop_server

    step "run $run: $server: highest sustained fan-out (sessions of 10, 10 updates/s each)"
    # Up the ladder until a level fails twice in a row (one retry: this machine is shared, and
    # a burst of someone else's work should not end the search).
    best=0
    for m in $max_ladder; do
      for attempt in 1 2; do
        start_server "$server"
        line=$(bench fanout --url "$url" --server "$server" --server-pid "$server_pid" \
          --scenario fanoutmax --sessions "$m" --players 10 --rate 10 \
          --duration "$max_duration" --warmup "$max_warmup")
        stop_server
        [ "$(echo "$line" | field sustained)" = yes ] && break
      done
      if [ "$(echo "$line" | field sustained)" = yes ]; then
        best=$(echo "$line" | field deliveries_per_s)
      else
        echo "RESULT scenario=maxfail server=$server sessions=$m gen_cpu_pct=$(echo "$line" | field gen_cpu_pct) server_cpu_pct=$(echo "$line" | field server_cpu_pct) p99_us=$(echo "$line" | field p99_us) lost=$(echo "$line" | field lost) run=$run" >> "$results"
        break
      fi
    done
    echo "RESULT scenario=max server=$server best_deliveries_per_s=$best run=$run" >> "$results"
  done

  # Compression (permessage-deflate), native only; see BENCHMARKS.md, "Compression": server
  # CPU per delivery at 50,000/s of 200-byte updates with clients that do not offer it and
  # with clients that do, then a 100-player session's join snapshot, plain and compressed.
  # Its lines: scenario=fanout50k-deflate-off / fanout50k-deflate-on / snapshot.
  if [[ " $servers " == *" native "* ]]; then
    for deflate in off on; do
      step "run $run: native: 50,000 deliveries/s of 200-byte updates, permessage-deflate $deflate"
      offer=(); [ "$deflate" = on ] && offer=(--deflate)
      start_server native
      bench fanout --url "$url" --server native --server-pid "$server_pid" \
        --scenario "fanout50k-deflate-$deflate" --sessions 100 --players 10 --rate 5 \
        --payload-bytes 200 "${offer[@]}" --duration "$fan_duration" --warmup "$fan_warmup" >/dev/null
      stop_server
    done
    step "run $run: native: join snapshot of a 100-player session (300-byte playerData), plain and compressed"
    start_server native
    bench snapshot --url "$url" --server native --players 99 --payload-bytes 300 >/dev/null
    stop_server
  fi
done
echo "#meta load_after=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)" >> "$results"

fi

# ---- the table: medians over the runs ----

# median SCENARIO SERVER KEY: the median of KEY over the runs' lines of that scenario and server.
median() {
  { grep "^RESULT scenario=$1 server=$2 " "$results" || true; } | { grep -o " $3=[^ ]*" || true; } | cut -d= -f2 |
    { grep -v '^NA$' || true; } | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "NA"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
count() { grep -c "^RESULT scenario=$1 server=$2 " "$results" || true; }
# fmt VALUE SCALE DIGITS: VALUE / SCALE with DIGITS decimals (NA stays NA).
fmt() { awk -v v="$1" -v s="$2" -v d="$3" 'BEGIN { if (v == "NA" || v == "") print "NA"; else printf "%.*f\n", d, v / s }'; }
# ratio A B: A / B with one decimal.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || a == "" || b == "" || b == 0) print "NA"; else printf "%.1fx\n", a / b }'; }
# verdict EXPR: "met" when the awk condition holds, "missed" otherwise, "?" when a value is
# missing or zero where it divides (nothing to compare with).
verdict() { awk "BEGIN { if (\"$*\" ~ /NA|\\* 0\$|\\* \$/) print \"?\"; else if ($*) print \"met\"; else print \"missed\" }"; }

[ -n "$table_only" ] && results="$table_only"
meta() { { grep -o "^#meta .*$1=[^ ]*" "$results" || true; } | { grep -o "$1=[^ ]*" || true; } | tail -1 | cut -d= -f2; }
players_of() { { grep -m1 "^RESULT scenario=$1 " "$results" || true; } | { grep -o ' players=[^ ]*' || true; } | cut -d= -f2; }
runs=$(meta runs); mode=$(meta mode)
idle_players=$(players_of idle); big_players=$(players_of bigsession)
o=original n=native
floor=$(median floor loopback floor_us_per_write)
max_o=$(median max $o best_deliveries_per_s); max_n=$(median max $n best_deliveries_per_s)
cpu_o=$(median fanout50k $o cpu_us_per_delivery); cpu_n=$(median fanout50k $n cpu_us_per_delivery)
p50_o=$(median fanout50k $o p50_us); p50_n=$(median fanout50k $n p50_us)
p99_o=$(median fanout50k $o p99_us); p99_n=$(median fanout50k $n p99_us)
gen_o=$(median fanout50k $o gen_cpu_us_per_delivery); gen_n=$(median fanout50k $n gen_cpu_us_per_delivery)
lost_o=$(median fanout50k $o lost); lost_n=$(median fanout50k $n lost)
cpu_r=$(median fanout50k reference cpu_us_per_delivery)
cpu_y=$(median fanout50k relay cpu_us_per_delivery)
cpu_t=$(median fanout50k tokio-relay cpu_us_per_delivery)
# The native server's CPU per delivery over the floor of the same run, run by run (the
# machine's noise moves both together), and their median.
per_run=$(awk '/^RESULT scenario=floor server=loopback /{ match($0, / floor_us_per_write=[^ ]*/); f[++nf] = substr($0, RSTART + 20, RLENGTH - 20) }
  /^RESULT scenario=fanout50k server=native /{ match($0, / cpu_us_per_delivery=[^ ]*/); c[++nc] = substr($0, RSTART + 21, RLENGTH - 21) }
  END { for (i = 1; i <= nc && i <= nf; i++) printf "%s%.2f", (i > 1 ? " " : ""), c[i] / f[i] }' "$results")
per_run_median=$(tr ' ' '\n' <<<"$per_run" | { grep . || true; } | sort -g |
  awk '{ v[NR] = $1 } END { if (NR == 0) { print "NA"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
mem_o=$(median idle $o bytes_per_player); mem_n=$(median idle $n bytes_per_player)
churn_o=$(median churn $o cycles_per_s); churn_n=$(median churn $n cycles_per_s)
big_o=$(median bigsession $o p99_us); big_n=$(median bigsession $n p99_us)
bigl_o=$(median bigsession $o lost); bigl_n=$(median bigsession $n lost)

{
  echo
  echo "Medians of $runs run(s) ($mode mode) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)"
  echo "Started $(meta started); load average (1/5/15 min) before: $(meta load_before), after: $(meta load_after)"
  echo "Raw results: $results"
  echo "gain: how many times better native is (higher throughput, or lower CPU, latency, memory)"
  echo
  printf '| %-62s | %12s | %12s | %8s | %-26s | %-6s |\n' "figure" "original" "native" "gain" "target" "native"
  printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..28})" "$(printf -- '-%.0s' {1..8})"
  row() { printf '| %-62s | %12s | %12s | %8s | %-26s | %-6s |\n' "$@"; }
  row "highest sustained fan-out, deliveries/s (0 lost, p99 < 50 ms)" "$(fmt "$max_o" 1 0)" "$(fmt "$max_n" 1 0)" "$(ratio "$max_n" "$max_o")" ">= 5x original" "$(verdict "$max_n >= 5 * $max_o")"
  row "server CPU per delivery at 50,000/s, us" "$(fmt "$cpu_o" 1 2)" "$(fmt "$cpu_n" 1 2)" "$(ratio "$cpu_o" "$cpu_n")" "<= 1.2 x floor = $(fmt "$floor" 0.8333333 2) us" "$(verdict "$cpu_n <= 1.2 * $floor")"
  row "loopback write floor (120 B, 1,000 sockets, 50,000/s), us" "" "$(fmt "$floor" 1 2)" "" "(measured in this run)" ""
  row "  minimal epoll relay, same load: CPU per delivery, us" "" "$(fmt "$cpu_y" 1 2)" "$(ratio "$cpu_y" "$cpu_n")" "(reference, this run)" ""
  row "  the relay's work on tokio, same load: CPU/delivery, us" "" "$(fmt "$cpu_t" 1 2)" "$(ratio "$cpu_t" "$cpu_n")" "(reference, this run)" ""
  row "  bare tokio-tungstenite server, same load: CPU/delivery, us" "" "$(fmt "$cpu_r" 1 2)" "$(ratio "$cpu_r" "$cpu_n")" "(reference, this run)" ""
  row "  native / floor of the same run, per run: ${per_run:-NA}" "" "$(fmt "$per_run_median" 1 2)" "" "<= 1.2 (median)" "$(verdict "$per_run_median <= 1.2")"
  row "p50 latency at 50,000/s, ms" "$(fmt "$p50_o" 1000 3)" "$(fmt "$p50_n" 1000 3)" "$(ratio "$p50_o" "$p50_n")" "" ""
  row "p99 latency at 50,000/s, ms" "$(fmt "$p99_o" 1000 3)" "$(fmt "$p99_n" 1000 3)" "$(ratio "$p99_o" "$p99_n")" "<= 0.5 ms" "$(verdict "$p99_n <= 500")"
  row "updates lost at 50,000/s" "$(fmt "$lost_o" 1 0)" "$(fmt "$lost_n" 1 0)" "" "0" "$(verdict "$lost_n == 0")"
  row "server memory per idle player at $idle_players players, KiB" "$(fmt "$mem_o" 1024 2)" "$(fmt "$mem_n" 1024 2)" "$(ratio "$mem_o" "$mem_n")" "<= 2 KiB" "$(verdict "$mem_n <= 2048")"
  row "churn, cycles/s (32 in flight)" "$(fmt "$churn_o" 1 0)" "$(fmt "$churn_n" 1 0)" "$(ratio "$churn_n" "$churn_o")" ">= 5x original" "$(verdict "$churn_n >= 5 * $churn_o")"
  row "one session of $big_players, 10 updates/s: p99, ms" "$(fmt "$big_o" 1000 2)" "$(fmt "$big_n" 1000 2)" "$(ratio "$big_o" "$big_n")" "< 10 ms, 0 lost" "$(verdict "$big_n < 10000 && $bigl_n == 0")"
  row "one session of $big_players: updates lost" "$(fmt "$bigl_o" 1 0)" "$(fmt "$bigl_n" 1 0)" "" "0" ""
  row "generator CPU per delivery at 50,000/s, us (information)" "$(fmt "$gen_o" 1 2)" "$(fmt "$gen_n" 1 2)" "" "" ""
  echo
  for s in original native; do
    echo "runs: $s: fanout50k $(count fanout50k "$s"), bigsession $(count bigsession "$s"), idle $(count idle "$s"), churn $(count churn "$s"), max $(count max "$s"); floor $(count floor loopback), relay $(count fanout50k relay), tokio-relay $(count fanout50k tokio-relay), reference $(count fanout50k reference)"
    grep "^RESULT scenario=maxfail server=$s " "$results" | sed 's/^RESULT scenario=maxfail/  first failing max level:/' || true
  done
} | tee "${results%.txt}-table.md"
