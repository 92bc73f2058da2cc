#!/usr/bin/env bash
# ddiff-core on 32-bit wasm, as the browser page runs it:
#   1. builds the core for wasm32-unknown-unknown (the page's target: no std IO at all);
#   2. runs the core's unit tests compiled for wasm32-wasip1 under Node's WASI
#      (tests/wasm/wasi-run.mjs), so every size and offset computation is tested where
#      usize is 32 bits (bundles over 4 GiB, 1 EB tar headers, 8 GiB PAX sizes).
# Adds the two rustup targets if missing. Needs node (18+). Extra arguments go to cargo test.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
for t in wasm32-unknown-unknown wasm32-wasip1; do
    if ! rustup target list --installed | grep -qx "$t"; then
        rustup target add "$t"
    fi
done
cargo build -p ddiff-core --target wasm32-unknown-unknown
# goflate (Go-exact gzip) is pure computation too, for the same page.
cargo build -p ddiff-goflate --target wasm32-unknown-unknown
# node prints one ExperimentalWarning for WASI; it is not a failure.
CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $ROOT/tests/wasm/wasi-run.mjs" \
    cargo test -p ddiff-core --lib --target wasm32-wasip1 "$@"
# goflate's Go digests and chunking checks, where usize is 32 bits (no Go needed).
CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $ROOT/tests/wasm/wasi-run.mjs" \
    cargo test -p ddiff-goflate --lib --test golden --test chunking --target wasm32-wasip1
