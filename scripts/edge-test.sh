#!/usr/bin/env bash
# The edge host's test: builds the worker, runs it locally (wrangler dev --local, i.e. workerd
# with the same build as a deploy), runs the black-box suite (tests/) against it, hibernation
# and resume tests included, then the Rust and the C# clients' tests (C#: when Mono is
# installed), resets a session object under its members (the relays take their seats back:
# scripts/edge-resume.js relink), counts the rows a session object writes per updatePlayer
# (edge-resume.js rows), restarts the local runtime mid-game (members resume with their
# tokens, those that do not come back leave by the object's alarm), then checks connect-time
# auth on a second local worker started with AUTH_SECRET (and on a third with one too short),
# and checks that `wrangler deploy --dry-run` succeeds.
#
# Needs only crates.io and the npm registry; runs as root, with CI=true and no input. Traffic
# goes to 127.0.0.1 only.
#
#   EDGE_PORT       port for the local worker (default 8787)
#   EDGE_AUTH_PORT  port for the workers with AUTH_SECRET (default EDGE_PORT + 1)
#   EDGE_IDLE_SECS  how long the hibernation test idles (default 20; locally an idle object
#                   hibernates after about 10 s)
#   EDGE_RESUME_GRACE_MS  the worker's resume grace period for the run (default 6000: short, so
#                   that the tests that wait for it to end are quick; long enough for the
#                   resumes they make, each within a second or two of its drop)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PORT=${EDGE_PORT:-8787}
AUTH_PORT=${EDGE_AUTH_PORT:-$((PORT + 1))}
IDLE=${EDGE_IDLE_SECS:-20}
GRACE=${EDGE_RESUME_GRACE_MS:-6000}
OUT=$ROOT/target/edge
LOG=$OUT/dev.log
mkdir -p "$OUT"

# wrangler: no metrics, no update check, nothing written outside the checkout.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_HIDE_BANNER=true
export XDG_CONFIG_HOME=$OUT/config
export WRANGLER_LOG_PATH=$OUT/logs

echo "== npm ci (wrangler, pinned in package-lock.json)"
npm ci --no-audit --no-fund

echo "== build (worker-build, wasm-bindgen)"
bash scripts/edge-build.sh
WASM=worker/build/index_bg.wasm
RAW=$(wc -c <"$WASM")
GZIP=$(gzip -9 -c "$WASM" | wc -c)
echo "worker wasm: $RAW bytes raw, $GZIP bytes gzip -9"
if [ "$GZIP" -ge $((1024 * 1024)) ]; then
    echo "the worker's wasm is over 1 MiB gzipped" >&2
    exit 1
fi

echo "== cargo build of the suite and the Rust client's tests (before the worker starts)"
cargo test -p sessionserver-tests --no-run
cargo test -p sessionserver-client --no-run

for P in "$PORT" "$AUTH_PORT"; do
    if node -e "require('net').connect($P, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"; then
        echo "port $P on 127.0.0.1 is taken; set EDGE_PORT (and EDGE_AUTH_PORT)" >&2
        exit 1
    fi
done
# wrangler dev would load these files' variables (an AUTH_SECRET, say) into the test workers.
for F in .dev.vars .env; do
    if [ -e "$F" ]; then
        echo "$F would set variables of the test workers: move it away while edge-test.sh runs" >&2
        exit 1
    fi
done

rm -rf "$OUT/state" "$OUT/auth-state"
# start_dev LOG PORT STATE NAME:value...: starts wrangler dev on 127.0.0.1:PORT (log: LOG) on
# the storage in STATE with these variables, and waits until it answers. Its own process
# group (setsid), so that stop_dev stops wrangler and the workerd it starts, and nothing else.
# The main worker's: RESUME_GRACE_MS short for the run; TEST_HOOKS: the session reset hook.
start_dev() {
    LOG=$1
    local port=$2 state=$3
    shift 3
    local vars=()
    for v in "$@"; do vars+=(--var "$v"); done
    echo "== wrangler dev --local on 127.0.0.1:$port (log: $LOG)"
    setsid node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$port" \
        --persist-to "$state" "${vars[@]}" >"$LOG" 2>&1 </dev/null &
    DEV_PID=$!
    echo "$DEV_PID" >"$OUT/dev.pid"
    for i in $(seq 1 240); do
        if node -e "fetch('http://127.0.0.1:$port/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; then
            echo "worker answers after ~$((i / 2)) s"
            return
        fi
        if ! kill -0 "$DEV_PID" 2>/dev/null; then
            echo "wrangler dev exited:" >&2
            cat "$LOG" >&2
            exit 1
        fi
        if [ "$i" -eq 240 ]; then
            echo "the worker did not answer within 120 s:" >&2
            cat "$LOG" >&2
            exit 1
        fi
        sleep 0.5
    done
}
stop_dev() {
    kill -TERM -- "-$DEV_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$DEV_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$DEV_PID" 2>/dev/null || true
}
# A panic would abort the wasm instance (workers-rs logs "panicked at"). Other lines local
# workerd logs are expected: "…had hung and would never generate a response" once per client
# that drops its TCP connection without a close (workers-sdk#5433, workers-rs#407).
no_panic() {
    if grep -q "panicked at\|RuntimeError" "$1"; then
        echo "the worker panicked:" >&2
        grep -A3 "panicked at\|RuntimeError" "$1" >&2
        exit 1
    fi
}
trap stop_dev EXIT
# REGISTRY_SHARDS: several registry shards (default 16), so that `-1` asks more than one and
# listSessions and joinOrCreate merge their answers.
MAIN_VARS=("RESUME_GRACE_MS:$GRACE" TEST_HOOKS:1 REGISTRY_SHARDS:4)
start_dev "$OUT/dev.log" "$PORT" "$OUT/state" "${MAIN_VARS[@]}"

echo "== without AUTH_SECRET, tokens are not looked at"
PORT=$PORT node scripts/edge-auth.js off

echo "== the demo and the JavaScript client are served as on the native host"
PORT=$PORT node -e '
const base = `http://127.0.0.1:${process.env.PORT}`;
(async () => {
  for (const [path, type] of [["/", "text/html"], ["/demo.js", "text/javascript"], ["/sessionserver.js", "text/javascript"]]) {
    const res = await fetch(base + path);
    const ok = res.ok && (res.headers.get("content-type") || "").startsWith(type) && (await res.text()).length > 100;
    if (!ok) { console.error(`FAILED GET ${path}: ${res.status} ${res.headers.get("content-type")}`); process.exit(1); }
    console.log(`ok GET ${path}`);
  }
})();
'

# The suite's tests of `joinSession -1` and error 6 need a server of their own, so they skip
# themselves against a URL. This worker is fresh and nothing else talks to it yet: check them
# here (registry, "just ended" sessions, 6 and 7), with the `ws` client from package.json.
echo "== joinSession -1, errors 6 and 7 on the fresh worker"
PORT=$PORT node - <<'JS'
const WebSocket = require('ws');
const url = `ws://127.0.0.1:${process.env.PORT}/`;
function client() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const queue = [], waiting = [];
    ws.on('message', (m) => {
      const frame = JSON.parse(m.toString());
      if (waiting.length) waiting.shift()(frame); else queue.push(frame);
    });
    ws.recv = () => new Promise((res, rej) => {
      if (queue.length) return res(queue.shift());
      const timer = setTimeout(() => rej(new Error('no frame within 10 s')), 10000);
      waiting.push((f) => { clearTimeout(timer); res(f); });
    });
    ws.cmd = (o) => { ws.send(JSON.stringify(o)); return ws.recv(); };
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}
function check(what, frame, command, fields) {
  const ok = frame.command === command && Object.entries(fields).every(([k, v]) => frame[k] === v);
  if (!ok) { console.error(`FAILED ${what}: got ${JSON.stringify(frame)}`); process.exit(1); }
  console.log(`ok ${what}`);
}
(async () => {
  const [a, b, c, d] = await Promise.all([client(), client(), client(), client()]);
  check('-1 with no session is 6', await d.cmd({ command: 'joinSession', sessionID: -1 }), 'sessionJoin', { error: 6 });
  const s1 = (await a.cmd({ command: 'createSession' })).sessionID;
  const s2 = (await b.cmd({ command: 'createSession' })).sessionID;
  // With registry shards, -1 finds the latest session of the shard it asks first (random),
  // or of the others if that one knows none: either live session here.
  const found = await c.cmd({ command: 'joinSession', sessionID: -1 });
  check('-1 finds a live session', found, 'sessionJoin', { error: 0 });
  if (found.sessionID !== s1 && found.sessionID !== s2) { console.error(`FAILED -1 found ${found.sessionID}, not ${s1} or ${s2}`); process.exit(1); }
  const [owner, other, left] = found.sessionID === s2 ? [b, a, s1] : [a, b, s2];
  await c.recv(); await owner.recv();                   // playerJoin of the owner to c, of c to it
  await c.cmd({ command: 'leaveSession' }); await owner.recv();
  await owner.cmd({ command: 'leaveSession' });        // the session c joined has ended
  check('-1 after one ended finds the other', await d.cmd({ command: 'joinSession', sessionID: -1 }), 'sessionJoin', { error: 0, sessionID: left });
  await d.recv(); await other.recv();
  check('an ended session is 7', await c.cmd({ command: 'joinSession', sessionID: found.sessionID }), 'sessionJoin', { error: 7 });
  await d.cmd({ command: 'leaveSession' }); await other.recv();
  await other.cmd({ command: 'leaveSession' });        // both have ended
  check('-1 after every session ended is 6', await c.cmd({ command: 'joinSession', sessionID: -1 }), 'sessionJoin', { error: 6 });
  check('an ID of 2^53 is 7', await c.cmd({ command: 'joinSession', sessionID: 2 ** 53 }), 'sessionJoin', { error: 7 });
  for (const ws of [a, b, c, d]) ws.close();
})().catch((e) => { console.error('FAILED', e); process.exit(1); });
JS

echo "== black-box suite against ws://127.0.0.1:$PORT/ (hibernation idle: $IDLE s, resume grace: $GRACE ms)"
SESSIONSERVER_URL="ws://127.0.0.1:$PORT/" SESSIONSERVER_HIBERNATION_WAIT_SECS="$IDLE" \
    SESSIONSERVER_RESUME_GRACE_MS="$GRACE" cargo test -p sessionserver-tests

# The same suite again, each client's socket on the edge's direct path: it opens on its first
# frame at /session/new (a create, anything else) or /session/<id> (a join of that ID, a resume
# with a token of it); tests/direct.rs checks error 34 and the 404, and the few tests that move
# one connection between sessions, or need the relay (-1, listSessions, joinOrCreate), skip.
echo "== the black-box suite on the direct path (/session/new, /session/<id>)"
SESSIONSERVER_DIRECT=1 SESSIONSERVER_URL="ws://127.0.0.1:$PORT/" SESSIONSERVER_HIBERNATION_WAIT_SECS="$IDLE" \
    SESSIONSERVER_RESUME_GRACE_MS="$GRACE" cargo test -p sessionserver-tests

echo "== the Rust client's tests against ws://127.0.0.1:$PORT/ (those needing a server of their own skip)"
SESSIONSERVER_URL="ws://127.0.0.1:$PORT/" SESSIONSERVER_RESUME_GRACE_MS="$GRACE" SESSIONSERVER_TEST_HOOKS=1 \
    cargo test -p sessionserver-client --test session --test resume --test access --test messages --test edge

# The C# client's tests, the same way (clients/csharp; scripts/csharp-test.sh builds them with
# mcs and, given SESSIONSERVER_URL, runs them against it). Only when Mono and Newtonsoft.Json are
# installed: scripts/test.sh runs csharp-test.sh before this script, which installs them (as
# root, from Debian) when missing; on its own, this script installs nothing for C#.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if installed mono-mcs && installed libnewtonsoft-json5.0-cil; then
    echo "== the C# client's tests against ws://127.0.0.1:$PORT/ (those needing a server of their own skip)"
    SESSIONSERVER_URL="ws://127.0.0.1:$PORT/" SESSIONSERVER_RESUME_GRACE_MS="$GRACE" SESSIONSERVER_TEST_HOOKS=1 \
        bash scripts/csharp-test.sh -
else
    echo "== the C# client's tests: SKIPPED (mono-mcs and libnewtonsoft-json5.0-cil are not installed; scripts/csharp-test.sh installs them)"
fi

# The hibernation test passes on any server; here it must also have made objects hibernate:
# each of its two sessions (one per spelling) logs its wake.
WOKE=$(grep -c "woke from hibernation" "$LOG" || true)
echo "session objects woken from hibernation: $WOKE"
if [ "$WOKE" -lt 2 ]; then
    echo "the hibernation test's sessions did not hibernate (expected 2 wakes in $LOG)" >&2
    exit 1
fi
no_panic "$LOG"

echo "== a session object reset under its members: the relays take their seats back"
PORT=$PORT GRACE_MS=$GRACE node scripts/edge-resume.js relink
echo "== a session object reset under members on the direct path: they resume on /session/<id>"
PORT=$PORT GRACE_MS=$GRACE node scripts/edge-resume.js direct-reset
RELINKED=$(grep -c "); resuming" "$LOG" || true)
echo "relays that took their seat back themselves: $RELINKED"
if [ "$RELINKED" -lt 4 ]; then
    echo "expected 4 relay-side resumes (2 original members, 2 resets) in $LOG" >&2
    exit 1
fi
no_panic "$LOG"

echo "== rows written per updatePlayer at steady state (storage in batches)"
PORT=$PORT node scripts/edge-resume.js rows
no_panic "$LOG"

echo "== the registry off the sessions' path: a join is answered while the registry holds listings"
PORT=$PORT node scripts/edge-resume.js registry-stall
no_panic "$LOG"

echo "== the local runtime restarted mid-game: members resume with their tokens"
STATE=$OUT/restart-state.json
rm -f "$STATE"
PORT=$PORT STATE=$STATE node scripts/edge-resume.js before-restart >"$OUT/before-restart.log" 2>&1 &
BEFORE=$!
for _ in $(seq 1 100); do
    grep -q READY "$OUT/before-restart.log" && break
    kill -0 "$BEFORE" 2>/dev/null || break
    sleep 0.2
done
if ! grep -q READY "$OUT/before-restart.log"; then
    cat "$OUT/before-restart.log" >&2
    exit 1
fi
stop_dev
wait "$BEFORE" || { cat "$OUT/before-restart.log" >&2; exit 1; }
start_dev "$OUT/dev-restarted.log" "$PORT" "$OUT/state" "${MAIN_VARS[@]}"
PORT=$PORT STATE=$STATE GRACE_MS=$GRACE node scripts/edge-resume.js after-restart
no_panic "$LOG"
stop_dev

# Connect-time auth: a worker with a secret (random for the run; on the command line, which is
# fine for a test secret, not for a real one: see worker/README.md), on storage of its own.
echo "== connect-time auth: a worker with AUTH_SECRET"
AUTH_SECRET=$(node -e "process.stdout.write(require('crypto').randomBytes(24).toString('hex'))")
start_dev "$OUT/dev-auth.log" "$AUTH_PORT" "$OUT/auth-state" "AUTH_SECRET:$AUTH_SECRET" \
    "RESUME_GRACE_MS:$GRACE" TEST_HOOKS:1
PORT=$AUTH_PORT AUTH_SECRET=$AUTH_SECRET node scripts/edge-auth.js check
no_panic "$LOG"
stop_dev

echo "== connect-time auth: a worker with an AUTH_SECRET too short"
SHORT=tooShort-7f3a
start_dev "$OUT/dev-auth-short.log" "$AUTH_PORT" "$OUT/auth-state" "AUTH_SECRET:$SHORT"
PORT=$AUTH_PORT AUTH_SECRET=$SHORT node scripts/edge-auth.js misconfigured
if ! grep -q "AUTH_SECRET is ${#SHORT} bytes; HS256 needs at least 32" "$LOG"; then
    echo "the worker did not log why it refuses upgrades (expected in $LOG)" >&2
    exit 1
fi
if grep -q "$SHORT" "$LOG"; then
    echo "the worker's log shows the secret ($LOG)" >&2
    exit 1
fi
echo "ok the worker logged: $(grep -m1 -o "AUTH_SECRET is ${#SHORT} bytes[^\"]*" "$LOG")"
no_panic "$LOG"
stop_dev
trap - EXIT

echo "== wrangler deploy --dry-run"
node_modules/.bin/wrangler deploy --dry-run --outdir "$OUT/dry-run"

echo "edge: suite passed against the local worker (hibernation and resume included), relays took their seats back after object resets, members resumed after a restart, connect-time auth checked with AUTH_SECRET; wasm $RAW bytes, $GZIP gzip"
