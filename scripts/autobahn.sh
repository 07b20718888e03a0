#!/usr/bin/env bash
# Runs Autobahn|Testsuite (the standard WebSocket conformance suite) against the native server:
# installs autobahntestsuite 25.10.1 under pyenv's Python 2.7 (once, cached), starts
# target/debug/sessionserver on a free loopback port, runs `wstest -m fuzzingclient` over every
# case (the permessage-deflate ones, 12.* and 13.*, included: the server negotiates it with no
# context takeover, `--deflate on`, its default), then sorts every case's result with tests/autobahn/classify.py. Exits non-zero on any RFC 6455
# violation; the last line is "N passed, N failed".
#
#   scripts/autobahn.sh            all cases
#   scripts/autobahn.sh 7.9.1 5.*  only these
#   scripts/autobahn.sh '12.*' '13.*'   only permessage-deflate
#   AUTOBAHN_INSTALL_ONLY=1 scripts/autobahn.sh   install the suite and stop
#
# Where pyenv's 2.7.18 is missing it says so and exits 0 (scripts/test.sh relies on that).
set -euo pipefail
cd "$(dirname "$0")/.."

autobahn_version=25.10.1
py2="${AUTOBAHN_PYTHON:-$(pyenv root 2>/dev/null || echo /nonexistent)/versions/2.7.18/bin/python}"
if [ ! -x "$py2" ]; then
  echo "autobahn: no pyenv Python 2.7.18 on this machine ($py2): Autobahn|Testsuite skipped"
  exit 0
fi

# The suite, cached outside the checkout so that every worktree shares one install.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sessionserver"
venv="$cache/autobahntestsuite-$autobahn_version"
mkdir -p "$cache"
(
  # One installer at a time; the others wait and then find it done.
  flock 9
  if [ ! -e "$venv/.installed" ]; then
    echo "autobahn: installing autobahntestsuite==$autobahn_version into $venv"
    rm -rf "$venv" "$venv.dl"
    # pyenv's 2.7 has no virtualenv: the last virtualenv that runs on 2.7 is a single script
    # inside its wheel.
    "$py2" -m pip download --disable-pip-version-check --no-deps -d "$venv.dl" virtualenv==16.7.12
    (cd "$venv.dl" && unzip -q virtualenv-16.7.12-*.whl)
    "$py2" "$venv.dl/virtualenv.py" --quiet "$venv"
    rm -rf "$venv.dl"
    "$venv/bin/pip" install --disable-pip-version-check --quiet "autobahntestsuite==$autobahn_version"
    touch "$venv/.installed"
  fi
) 9>"$cache/autobahn.lock"
[ -z "${AUTOBAHN_INSTALL_ONLY:-}" ] || exit 0

# The classifier's own tests first (Python 3, a fraction of a second).
python3 -m unittest tests/autobahn/test_classify.py 2>&1 | tail -n 1

out="$PWD/target/autobahn"
rm -rf "$out/report"
mkdir -p "$out/report"

echo "autobahn: building the server"
cargo build --quiet -p native --bin sessionserver

# The suite tests the WebSocket layer, so the application's own limits are raised out of its
# way: it sends up to 16 MiB messages (9.*) and up to 1,000 messages in a burst (9.7, 9.8),
# which the defaults refuse by design (1009, error 18 then 1008; native/tests cover those).
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM
RUST_LOG="${RUST_LOG:-warn}" target/debug/sessionserver --bind 127.0.0.1 --port 0 \
  --max-message-size $((20 * 1024 * 1024)) \
  --commands-per-second 1000000 --command-burst 1000000 --max-refused 1000000 \
  >"$out/server.out" 2>"$out/server.log" &
server_pid=$!
port=
for _ in $(seq 1 200); do
  port=$(awk '/Listening on port/ { print $NF; exit }' "$out/server.out")
  [ -n "$port" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "autobahn: the server did not start:" >&2
    cat "$out/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "autobahn: the server printed no port" >&2
  exit 1
fi
echo "autobahn: server (pid $server_pid) on 127.0.0.1:$port"

# Nothing is excluded any more (permessage-deflate, 12.* and 13.*, is negotiated).
excluded='[]'
python3 - "$out" "$port" "$excluded" "$@" <<'PY'
import json, sys
out, port, excluded, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
spec = {
    "outdir": out + "/report",
    "servers": [{"agent": "sessionserver", "url": "ws://127.0.0.1:%s/" % port}],
    "cases": cases or ["*"],
    "exclude-cases": excluded,
    "exclude-agent-cases": {},
}
with open(out + "/spec.json", "w") as f:
    json.dump(spec, f, indent=2)
PY

echo "autobahn: running wstest -m fuzzingclient (about 2.5 minutes for every case)"
if ! (cd "$out" && "$venv/bin/wstest" -m fuzzingclient -s spec.json >wstest.log 2>&1); then
  tail -n 30 "$out/wstest.log" >&2
  echo "autobahn: wstest failed (log: $out/wstest.log)" >&2
  exit 1
fi
stop_server
python3 tests/autobahn/classify.py "$out/report" --agent sessionserver --excluded "$excluded"
