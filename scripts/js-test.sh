#!/usr/bin/env bash
# The JavaScript client's tests and the demo's browser test, against a native server each test
# file starts on 127.0.0.1 (port 0) and stops by its PID. Installs what they need on a fresh
# machine, without asking: Chromium from Debian (if /usr/bin/chromium is missing; needs root)
# and the npm devDependencies from clients/js/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CI=true DEBIAN_FRONTEND=noninteractive

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM:-}" ]; then
  step "installing Chromium (Debian package) for the browser test"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends chromium
fi

step "clients/js: npm ci"
(cd clients/js && npm ci --no-audit --no-fund)

step "building the native server"
cargo build -p native --bin sessionserver
bin=$(cargo build -p native --bin sessionserver --message-format=json 2>/dev/null |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const l of s.split("\n")){if(!l.startsWith("{"))continue;const m=JSON.parse(l);if(m.reason==="compiler-artifact"&&m.executable&&m.target.name==="sessionserver")console.log(m.executable)}})')
export SESSIONSERVER_BIN="$bin"

step "clients/js: node --test (client against the native server, types, demo in headless Chromium)"
cd clients/js
node --test --test-reporter=spec --test-concurrency=1 test/*.test.mjs
