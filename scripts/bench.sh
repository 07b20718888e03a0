#!/usr/bin/env bash
# The benchmark (not a test): runs the same scenarios, one after the other on this machine,
# against the native server and against the original npm package sessionserver@0.2.5, several
# times each, and prints a table of medians side by side. See BENCHMARKS.md.
#
#   scripts/bench.sh              full run (about 29 minutes on 2 cores; see BENCHMARKS.md)
#   scripts/bench.sh --quick      seconds per scenario, small sizes (about 3-5 minutes)
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
  big_duration=3; big_warmup=1
  join_probes=3
  max_duration=3; max_warmup=1
  max_ladder="10 25 50 100 150 200 300"
  floor_duration=2
else
  runs=${runs:-3}
  fan_duration=10; fan_warmup=2
  idle_players=10000
  churn_duration=10; churn_warmup=2
  # The default maximum of a session's members; the join probe joins a session of one less.
  big_players=4096
  big_duration=10; big_warmup=2
  join_probes=5
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
need=$((idle_players > big_players ? idle_players : big_players))
if [ "$(ulimit -n)" -lt $((need + 1000)) ]; then
  echo "warning: ulimit -n is $(ulimit -n); the idle and big-session scenarios need more than $need" >&2
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
    # Named as the run would have been (its --scenario and --server), so the table counts it.
    local name=$1 who=server prev=
    for a in "$@"; do
      [ "$prev" = --scenario ] && name=$a
      [ "$prev" = --server ] && who=$a
      prev=$a
    done
    line="RESULT scenario=$name server=$who failed=yes"
  fi
  echo "$line run=$run" >> "$results"
  echo "$line" >&2
  echo "$line"
}

# The value of key $1 in a RESULT line on stdin.
field() { grep -o " $1=[^ ]*" | head -1 | cut -d= -f2; }

# The 50,000 deliveries/s fan-out against a fresh server $1 (also the reference servers);
# $2: the send pattern (even, the default, or burst: sends on 1 ms ticks).
fanout50k() {
  local pattern=${2:-even} scenario=fanout50k
  [ "$pattern" = burst ] && scenario=fanout50k-burst
  start_server "$1"
  bench fanout --url "$url" --server "$1" --server-pid "$server_pid" \
    --scenario "$scenario" --pattern "$pattern" --sessions 100 --players 10 --rate 5 \
    --duration "$fan_duration" --warmup "$fan_warmup" >/dev/null
  stop_server
}

# The highest sustained fan-out of server $1 in pattern $2: up the ladder until a level fails
# twice in a row (one retry: this machine is shared, and a burst of someone else's work should
# not end the search).
ladder() {
  local server=$1 pattern=$2 scenario=max best=0 line m attempt
  [ "$pattern" = burst ] && scenario=max-burst
  for m in $max_ladder; do
    # The native server sustains the lowest levels in every run so far: in a full run its
    # ladder starts at 50 sessions (the run's time limit is 30 minutes).
    if [ "$server" = native ] && [ "$mode" = full ] && [ "$m" -lt 50 ]; then continue; fi
    for attempt in 1 2; do
      start_server "$server"
      line=$(bench fanout --url "$url" --server "$server" --server-pid "$server_pid" \
        --scenario "fanout$scenario" --pattern "$pattern" --sessions "$m" --players 10 --rate 10 \
        --duration "$max_duration" --warmup "$max_warmup")
      stop_server
      [ "$(echo "$line" | field sustained)" = yes ] && break
    done
    if [ "$(echo "$line" | field sustained)" = yes ]; then
      best=$(echo "$line" | field deliveries_per_s)
    else
      echo "RESULT scenario=${scenario}fail server=$server sessions=$m gen_cpu_pct=$(echo "$line" | field gen_cpu_pct) server_cpu_pct=$(echo "$line" | field server_cpu_pct) p99_us=$(echo "$line" | field p99_us) lost=$(echo "$line" | field lost) late_sends=$(echo "$line" | field late_sends) run=$run" >> "$results"
      break
    fi
  done
  echo "RESULT scenario=$scenario server=$server best_deliveries_per_s=$best run=$run" >> "$results"
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
    fanout50k "$server" even
    step "run $run: $server: the same, bursty (sends on 1 ms ticks)"
    fanout50k "$server" burst

    step "run $run: $server: one session of $big_players players, 10 updates/s in total; then $join_probes joins"
    # After the traffic, its last player leaves and a fresh client joins the session of
    # $((big_players - 1)) (making it full again) $join_probes times: joinSession to its last playerJoin.
    # The original did not fill a session of 4,096 in 120 s on this machine (2026-12-01): it
    # gets 60 s, then its figures are NA; in a full run it tries in the first run only (the
    # run's time limit is 30 minutes).
    setup_timeout=180
    [ "$server" = original ] && setup_timeout=60
    if [ "$server" != original ] || [ "$mode" = quick ] || [ "$run" = 1 ]; then
      start_server "$server"
      bench fanout --url "$url" --server "$server" --server-pid "$server_pid" \
        --scenario bigsession --sessions 1 --players "$big_players" --session-rate 10 \
        --duration "$big_duration" --warmup "$big_warmup" --join-probes "$join_probes" \
        --setup-timeout "$setup_timeout" >/dev/null
      stop_server
    fi

    step "run $run: $server: $idle_players idle players in the lobby"
    start_server "$server"
    bench idle --url "$url" --server "$server" --server-pid "$server_pid" \
      --players "$idle_players" >/dev/null
    stop_server

    step "run $run: $server: $idle_players idle players in sessions of 10 (resume on the native server)"
    # The original knows no hello: its players are in sessions of 10 without it.
    resume=--resume
    [ "$server" = original ] && resume=
    start_server "$server"
    bench idle --url "$url" --server "$server" --server-pid "$server_pid" \
      --scenario idle10 --players "$idle_players" --session-size 10 $resume >/dev/null
    stop_server

    step "run $run: $server: churn (32 cycles in flight)"
    start_server "$server"
    bench churn --url "$url" --server "$server" --server-pid "$server_pid" \
      --concurrency 32 --duration "$churn_duration" --warmup "$churn_warmup" >/dev/null
    stop_server

    step "run $run: $server: highest sustained fan-out (sessions of 10, 10 updates/s each)"
    ladder "$server" even
    step "run $run: $server: highest sustained fan-out, bursty (sends on 1 ms ticks)"
    ladder "$server" burst

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
echo "#meta load_after=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /) took_s=$SECONDS" >> "$results"

fi

# ---- the table: medians over the runs ----

# values SCENARIO SERVER KEY: KEY of each run's line of that scenario and server, in run order.
values() {
  { grep "^RESULT scenario=$1 server=$2 " "$results" || true; } | { grep -o " $3=[^ ]*" || true; } | cut -d= -f2
}
# median SCENARIO SERVER KEY: the median of KEY over the runs' lines of that scenario and server.
median() {
  values "$@" | { grep -v '^NA$' || true; } | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "NA"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# per_run SCENARIO SERVER KEY SCALE DIGITS: the runs' values, scaled, separated by " / ".
per_run() {
  values "$1" "$2" "$3" | awk -v s="$4" -v d="$5" '{ printf "%s%s", (NR > 1 ? " / " : ""), ($1 == "NA" ? "NA" : sprintf("%.*f", d, $1 / s)) } END { if (NR == 0) printf "NA" }'
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
players_of() { { grep -m1 "^RESULT scenario=$1 .* players=" "$results" || true; } | { grep -o ' players=[^ ]*' || true; } | cut -d= -f2; }
runs=$(meta runs); mode=$(meta mode)
idle_players=$(players_of idle); big_players=$(players_of bigsession)
join_members=$(( ${big_players:-1} - 1 ))
o=original n=native
floor=$(median floor loopback floor_us_per_write)
# The native server's CPU per delivery over the floor of the same run, run by run (the
# machine's noise moves both together), and their median.
per_run_ratio=$(awk '/^RESULT scenario=floor server=loopback /{ match($0, / floor_us_per_write=[^ ]*/); f[++nf] = substr($0, RSTART + 20, RLENGTH - 20) }
  /^RESULT scenario=fanout50k server=native /{ match($0, / cpu_us_per_delivery=[^ ]*/); c[++nc] = substr($0, RSTART + 21, RLENGTH - 21) }
  END { for (i = 1; i <= nc && i <= nf; i++) printf "%s%.2f", (i > 1 ? " / " : ""), c[i] / f[i] }' "$results")
per_run_median=$(sed 's| / |\n|g' <<<"$per_run_ratio" | { grep . || true; } | sort -g |
  awk '{ v[NR] = $1 } END { if (NR == 0) { print "NA"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
m() { median "$@"; }
max_o=$(m max $o best_deliveries_per_s); max_n=$(m max $n best_deliveries_per_s)
maxb_o=$(m max-burst $o best_deliveries_per_s); maxb_n=$(m max-burst $n best_deliveries_per_s)
cpu_o=$(m fanout50k $o cpu_us_per_delivery); cpu_n=$(m fanout50k $n cpu_us_per_delivery)
p50_o=$(m fanout50k $o p50_us); p50_n=$(m fanout50k $n p50_us)
p99_o=$(m fanout50k $o p99_us); p99_n=$(m fanout50k $n p99_us)
lost_o=$(m fanout50k $o lost); lost_n=$(m fanout50k $n lost)
gen_o=$(m fanout50k $o gen_cpu_us_per_delivery); gen_n=$(m fanout50k $n gen_cpu_us_per_delivery)
bcpu_o=$(m fanout50k-burst $o cpu_us_per_delivery); bcpu_n=$(m fanout50k-burst $n cpu_us_per_delivery)
bp50_o=$(m fanout50k-burst $o p50_us); bp50_n=$(m fanout50k-burst $n p50_us)
bp99_o=$(m fanout50k-burst $o p99_us); bp99_n=$(m fanout50k-burst $n p99_us)
blost_o=$(m fanout50k-burst $o lost); blost_n=$(m fanout50k-burst $n lost)
cpu_r=$(m fanout50k reference cpu_us_per_delivery)
cpu_y=$(m fanout50k relay cpu_us_per_delivery)
cpu_t=$(m fanout50k tokio-relay cpu_us_per_delivery)
mem_o=$(m idle $o bytes_per_player); mem_n=$(m idle $n bytes_per_player)
mem10_o=$(m idle10 $o bytes_per_player); mem10_n=$(m idle10 $n bytes_per_player)
churn_o=$(m churn $o cycles_per_s); churn_n=$(m churn $n cycles_per_s)
big_o=$(m bigsession $o p99_us); big_n=$(m bigsession $n p99_us)
bigl_o=$(m bigsession $o lost); bigl_n=$(m bigsession $n lost)
join_o=$(m bigsession $o join_p50_us); join_n=$(m bigsession $n join_p50_us)
zoff=$(m fanout50k-deflate-off $n cpu_us_per_delivery); zon=$(m fanout50k-deflate-on $n cpu_us_per_delivery)
# With compression over without, run by run (each pair ran one after the other).
zratio_runs=$(paste -d' ' <(values fanout50k-deflate-on $n cpu_us_per_delivery) <(values fanout50k-deflate-off $n cpu_us_per_delivery) |
  awk '{ printf "%s%.2f", (NR > 1 ? " / " : ""), ($2 > 0 ? $1 / $2 : 0) }')
zratio=$(sed 's| / |\n|g' <<<"$zratio_runs" | { grep . || true; } | sort -g |
  awk '{ v[NR] = $1 } END { if (NR == 0) { print "NA"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
zsnap=$(m snapshot $n plain_over_deflate)

{
  echo
  echo "Medians of $runs run(s) ($mode mode) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)"
  echo "Started $(meta started), took $(meta took_s) s; load average (1/5/15 min) before: $(meta load_before), after: $(meta load_after)"
  echo "Raw results: $results"
  echo "gain: how many times better native is (higher throughput, or lower CPU, latency, memory)"
  echo
  printf '| %-58s | %10s | %10s | %7s | %-24s | %-6s | %s |\n' "figure" "original" "native" "gain" "target" "native" "native per run"
  echo "|---|---:|---:|---:|---|---|---|"
  row() { printf '| %-58s | %10s | %10s | %7s | %-24s | %-6s | %s |\n' "$@"; }
  row "highest sustained fan-out, deliveries/s (0 lost, p99 < 50 ms)" "$(fmt "$max_o" 1 0)" "$(fmt "$max_n" 1 0)" "$(ratio "$max_n" "$max_o")" ">= 5x original" "$(verdict "$max_n >= 5 * $max_o")" "$(per_run max $n best_deliveries_per_s 1 0)"
  row "server CPU per delivery at 50,000/s, us" "$(fmt "$cpu_o" 1 2)" "$(fmt "$cpu_n" 1 2)" "$(ratio "$cpu_o" "$cpu_n")" "" "" "$(per_run fanout50k $n cpu_us_per_delivery 1 2)"
  row "loopback write floor (120 B, 1,000 sockets, 50,000/s), us" "" "$(fmt "$floor" 1 2)" "" "(measured in this run)" "" "$(per_run floor loopback floor_us_per_write 1 2)"
  row "native CPU per delivery / floor of the same run" "" "$(fmt "$per_run_median" 1 2)" "" "<= 1.2 (median)" "$(verdict "$per_run_median <= 1.2")" "${per_run_ratio:-NA}"
  row "  minimal epoll relay, same load: CPU per delivery, us" "" "$(fmt "$cpu_y" 1 2)" "" "(reference)" "" "$(per_run fanout50k relay cpu_us_per_delivery 1 2)"
  row "  the relay's work on tokio, same load: CPU/delivery, us" "" "$(fmt "$cpu_t" 1 2)" "" "(reference)" "" "$(per_run fanout50k tokio-relay cpu_us_per_delivery 1 2)"
  row "  bare tokio-tungstenite server, same load: CPU/delivery, us" "" "$(fmt "$cpu_r" 1 2)" "" "(reference)" "" "$(per_run fanout50k reference cpu_us_per_delivery 1 2)"
  row "p50 latency at 50,000/s, ms" "$(fmt "$p50_o" 1000 3)" "$(fmt "$p50_n" 1000 3)" "$(ratio "$p50_o" "$p50_n")" "" "" "$(per_run fanout50k $n p50_us 1000 3)"
  row "p99 latency at 50,000/s, ms" "$(fmt "$p99_o" 1000 3)" "$(fmt "$p99_n" 1000 3)" "$(ratio "$p99_o" "$p99_n")" "<= 0.5 ms" "$(verdict "$p99_n <= 500")" "$(per_run fanout50k $n p99_us 1000 3)"
  row "updates lost at 50,000/s" "$(fmt "$lost_o" 1 0)" "$(fmt "$lost_n" 1 0)" "" "0" "$(verdict "$lost_n == 0")" "$(per_run fanout50k $n lost 1 0)"
  row "bursty (1 ms ticks) at 50,000/s: CPU per delivery, us" "$(fmt "$bcpu_o" 1 2)" "$(fmt "$bcpu_n" 1 2)" "$(ratio "$bcpu_o" "$bcpu_n")" "(reported)" "" "$(per_run fanout50k-burst $n cpu_us_per_delivery 1 2)"
  row "bursty at 50,000/s: p50 latency, ms" "$(fmt "$bp50_o" 1000 3)" "$(fmt "$bp50_n" 1000 3)" "$(ratio "$bp50_o" "$bp50_n")" "(reported)" "" "$(per_run fanout50k-burst $n p50_us 1000 3)"
  row "bursty at 50,000/s: p99 latency, ms" "$(fmt "$bp99_o" 1000 3)" "$(fmt "$bp99_n" 1000 3)" "$(ratio "$bp99_o" "$bp99_n")" "(reported)" "" "$(per_run fanout50k-burst $n p99_us 1000 3)"
  row "bursty at 50,000/s: updates lost" "$(fmt "$blost_o" 1 0)" "$(fmt "$blost_n" 1 0)" "" "(reported)" "" "$(per_run fanout50k-burst $n lost 1 0)"
  row "bursty: highest sustained fan-out, deliveries/s" "$(fmt "$maxb_o" 1 0)" "$(fmt "$maxb_n" 1 0)" "$(ratio "$maxb_n" "$maxb_o")" "(reported)" "" "$(per_run max-burst $n best_deliveries_per_s 1 0)"
  row "memory per idle player, $idle_players in sessions of 10, KiB" "$(fmt "$mem10_o" 1024 2)" "$(fmt "$mem10_n" 1024 2)" "$(ratio "$mem10_o" "$mem10_n")" "<= 2 KiB (with resume)" "$(verdict "$mem10_n <= 2048")" "$(per_run idle10 $n bytes_per_player 1024 2)"
  row "memory per idle player, $idle_players in the lobby, KiB" "$(fmt "$mem_o" 1024 2)" "$(fmt "$mem_n" 1024 2)" "$(ratio "$mem_o" "$mem_n")" "(reported)" "" "$(per_run idle $n bytes_per_player 1024 2)"
  row "churn, cycles/s (32 in flight)" "$(fmt "$churn_o" 1 0)" "$(fmt "$churn_n" 1 0)" "$(ratio "$churn_n" "$churn_o")" ">= 5x original" "$(verdict "$churn_n >= 5 * $churn_o")" "$(per_run churn $n cycles_per_s 1 0)"
  row "one session of $big_players, 10 updates/s: p99, ms" "$(fmt "$big_o" 1000 2)" "$(fmt "$big_n" 1000 2)" "$(ratio "$big_o" "$big_n")" "<= 20 ms, 0 lost" "$(verdict "$big_n <= 20000 && $bigl_n == 0")" "$(per_run bigsession $n p99_us 1000 2)"
  row "one session of $big_players: updates lost" "$(fmt "$bigl_o" 1 0)" "$(fmt "$bigl_n" 1 0)" "" "0" "" "$(per_run bigsession $n lost 1 0)"
  row "joining a session of $join_members (to its last playerJoin), ms" "$(fmt "$join_o" 1000 1)" "$(fmt "$join_n" 1000 1)" "$(ratio "$join_o" "$join_n")" "<= 100 ms (median)" "$(verdict "$join_n <= 100000")" "$(per_run bigsession $n join_p50_us 1000 1)"
  row "generator CPU per delivery at 50,000/s, us (information)" "$(fmt "$gen_o" 1 2)" "$(fmt "$gen_n" 1 2)" "" "" "" "$(per_run fanout50k $n gen_cpu_us_per_delivery 1 2)"
  row "compression off: CPU per delivery at 50,000/s, 200 B updates, us" "" "$(fmt "$zoff" 1 2)" "" "(reference)" "" "$(per_run fanout50k-deflate-off $n cpu_us_per_delivery 1 2)"
  row "compression on: the same, us" "" "$(fmt "$zon" 1 2)" "" "(clients offer deflate)" "" "$(per_run fanout50k-deflate-on $n cpu_us_per_delivery 1 2)"
  row "compression on / off, CPU per delivery (median of runs)" "" "$(fmt "$zratio" 1 2)" "" "<= 1.3" "$(verdict "$zratio <= 1.3")" "${zratio_runs:-NA}"
  row "100-player join snapshot: bytes plain / compressed" "" "$(fmt "$zsnap" 1 2)" "" ">= 3x smaller" "$(verdict "$zsnap >= 3")" "$(per_run snapshot $n plain_over_deflate 1 2)"
  echo
  echo "Per run of the original: sustained $(per_run max $o best_deliveries_per_s 1 0); churn $(per_run churn $o cycles_per_s 1 0); big session p99 ms $(per_run bigsession $o p99_us 1000 2), lost $(per_run bigsession $o lost 1 0); join ms $(per_run bigsession $o join_p50_us 1000 1)"
  for s in original native; do
    echo "runs: $s: fanout50k $(count fanout50k "$s"), burst $(count fanout50k-burst "$s"), bigsession $(count bigsession "$s"), idle $(count idle "$s"), idle10 $(count idle10 "$s"), churn $(count churn "$s"), max $(count max "$s"), max-burst $(count max-burst "$s"); floor $(count floor loopback), relay $(count fanout50k relay), tokio-relay $(count fanout50k tokio-relay), reference $(count fanout50k reference)"
    grep -E "^RESULT scenario=max(-burst)?fail server=$s " "$results" | sed -E 's/^RESULT scenario=(max(-burst)?)fail/  first failing level (\1):/' || true
  done
} | tee "${results%.txt}-table.md"
