#!/usr/bin/env bash
# Installs everything the tests need, then runs every test: formatting and lints, the core's
# tests natively and under wasm32 (Node), the native server's tests, the black-box protocol
# suite, and the edge host's suite. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: wasm32 target and wasm-bindgen-cli at the version in Cargo.lock"
rustup target add wasm32-unknown-unknown
wasm_bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wasm_bindgen_version" ]; then
  # Not --locked: one of its pinned dependencies is not in the reachable registry index.
  cargo install wasm-bindgen-cli --version "$wasm_bindgen_version"
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

step "native: core, native server, black-box suite against an in-process server"
cargo test

step "edge host: its own tests natively (storage rows, link encoding) and its lints for wasm32"
cargo test -p sessionserver-worker
cargo clippy --target wasm32-unknown-unknown -p sessionserver-worker -- -D warnings

step "core under wasm32 (wasm-bindgen-test in Node)"
cargo test -p sessionserver-core --target wasm32-unknown-unknown

step "Rust client: its sans-IO core for wasm32, the example game loop against an in-process server"
cargo clippy -p sessionserver-client --no-default-features --target wasm32-unknown-unknown -- -D warnings
cargo run -q -p sessionserver-client --example dots >/dev/null

step "JavaScript client and the demo in headless Chromium"
scripts/js-test.sh

step "C# client under Mono (clients/csharp: installs mono-mcs and Newtonsoft.Json from Debian if missing)"
scripts/csharp-test.sh

step "fuzzing the core and the frame reader: short runs (cargo-fuzz, nightly)"
if rustup run nightly rustc --version >/dev/null 2>&1; then
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2
  (cd fuzz && cargo +nightly fuzz run protocol -- -max_total_time="${FUZZ_SECONDS:-30}")
  (cd fuzz && cargo +nightly fuzz run frame_reader -- -max_total_time="${FUZZ_FRAME_SECONDS:-15}")
else
  echo "no nightly toolchain on this machine (it cannot be downloaded here): fuzzing skipped"
fi

step "Autobahn|Testsuite against the native server (pyenv's Python 2.7; else skipped)"
if [ -x "$(pyenv root 2>/dev/null)/versions/2.7.18/bin/python" ]; then
  scripts/autobahn.sh
else
  echo "no pyenv Python 2.7.18 on this machine: Autobahn|Testsuite skipped"
fi

step "edge host: the black-box suite against the worker run locally (wrangler dev)"
scripts/edge-test.sh

step "all tests passed"
