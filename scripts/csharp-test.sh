#!/usr/bin/env bash
# The C# client's tests (clients/csharp) against the native server, under Mono from Debian.
# Installs what they need on a fresh machine, without asking, only when it is missing (needs
# root or sudo): mono-mcs (mcs, the C# 7 compiler, and the Mono runtime with the assemblies
# the client uses) and libnewtonsoft-json5.0-cil (Newtonsoft.Json 6.0.8). Not the whole of
# mono-devel and libnewtonsoft-json-cil-dev: those 163 packages took ~110 s to install on a
# fresh machine, these 24 take ~26 s, and the build needs nothing more. Builds the library and the tests with mcs, then runs them; the tests start
# their own servers on 127.0.0.1 (port 0) from the binary given, and stop them by PID.
#
#   scripts/csharp-test.sh [path/to/sessionserver] [test name filter]
#
# Without a binary it builds the native server's debug binary, the one `cargo test` builds.
#
# With SESSIONSERVER_URL (ws://host:port/, e.g. the edge host under `wrangler dev`, as
# scripts/edge-test.sh runs it) the tests run against that server instead and no native server
# is built (give `-` or nothing for the binary); the tests that need a server of their own
# (its options, a restart, its limits) say they are skipped and why. SESSIONSERVER_RESUME_GRACE_MS
# (that server's grace period) lets the test that waits for it to end run, and
# SESSIONSERVER_TEST_HOOKS=1 (a local worker with TEST_HOOKS=1) the edge's object-reset test.
# The jslib's test needs the native server and is not run then.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n==> %s\n' "$*"; }

newtonsoft=/usr/lib/cli/Newtonsoft.Json-5.0/Newtonsoft.Json.dll
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if ! installed mono-mcs || ! installed libnewtonsoft-json5.0-cil; then
  step "installing Mono and Newtonsoft.Json (Debian packages)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends mono-mcs libnewtonsoft-json5.0-cil
fi

bin=${1:-}
external=${SESSIONSERVER_URL:-}
if [ -n "$external" ]; then
  [ -z "$bin" ] || [ "$bin" = - ] || { echo "SESSIONSERVER_URL is set: give - (or nothing) for the server binary" >&2; exit 2; }
  bin=-
elif [ -z "$bin" ] || [ "$bin" = - ]; then
  step "building the native server"
  cargo build -p native --bin sessionserver
  target=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  bin="$target/debug/sessionserver"
fi
[ -n "$external" ] || [ -x "$bin" ] || { echo "no server binary at $bin" >&2; exit 2; }

step "clients/csharp: building the library and the tests (mcs, C# 7)"
out=clients/csharp/build
mkdir -p "$out"
refs=(-r:"$newtonsoft" -r:System.dll -r:System.Core.dll)
mcs -langversion:7 -warnaserror+ -target:library -out:"$out/SessionServer.dll" "${refs[@]}" clients/csharp/src/*.cs
# The Unity WebGL transport compiles outside Unity too (it needs no UnityEngine).
mcs -langversion:7 -warnaserror+ -target:library -define:UNITY_WEBGL -out:"$out/SessionServer.WebGL.dll" \
  -r:"$out/SessionServer.dll" "${refs[@]}" clients/csharp/unity/*.cs
mcs -langversion:7 -warnaserror+ -out:"$out/SessionServer.Tests.exe" -r:"$out/SessionServer.dll" "${refs[@]}" clients/csharp/tests/*.cs
cp "$newtonsoft" "$out/"

if [ -n "$external" ]; then
  step "clients/csharp: the tests against $external (those needing a server of their own skip)"
  timeout 600 mono "$out/SessionServer.Tests.exe" - ${2:+"$2"}
  echo "the jslib's test needs the native server: not run against SESSIONSERVER_URL"
  exit 0
fi

step "clients/csharp: the tests against the native server ($bin)"
# A hard stop for a hung run; each wait in the tests gives up after 20 s by itself.
timeout 600 mono "$out/SessionServer.Tests.exe" "$(realpath "$bin")" ${2:+"$2"}

if command -v node >/dev/null; then
  step "clients/csharp/unity: the WebGL transport's jslib in Node against the native server"
  # Node 20 has a browser WebSocket behind a flag; 22 and later have it anyway.
  flag=""
  node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' || flag=--experimental-websocket
  SESSIONSERVER_BIN="$(realpath "$bin")" node $flag --no-warnings --test clients/csharp/unity/test/*.test.mjs
else
  echo "no node on this machine: the jslib test skipped"
fi
