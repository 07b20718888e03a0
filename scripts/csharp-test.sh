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
if [ -z "$bin" ]; then
  step "building the native server"
  cargo build -p native --bin sessionserver
  target=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  bin="$target/debug/sessionserver"
fi
[ -x "$bin" ] || { echo "no server binary at $bin" >&2; exit 2; }

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
