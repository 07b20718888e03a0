#!/usr/bin/env bash
# Builds the edge host (worker/) into worker/build/: index.js and index_bg.wasm, which
# wrangler.toml points at. wrangler runs this as its build command (dev and deploy).
#
# Everything comes from the package registries: worker-build and the wasm-bindgen CLI from
# crates.io (installed when missing or at another version), esbuild from npm (fetched by
# worker-build). wasm-opt is off (worker/Cargo.toml): worker-build would download it from
# elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
# The CLI must be the exact wasm-bindgen version in Cargo.lock.
WASM_BINDGEN_VERSION=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;}' Cargo.lock)

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
# Not --locked: a pinned dependency of these tools is missing from the registry index.
if [ "$(worker-build --version 2>/dev/null)" != "$WORKER_BUILD_VERSION" ]; then
    cargo install worker-build --version "$WORKER_BUILD_VERSION"
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
cd worker
worker-build --release
