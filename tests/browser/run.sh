#!/usr/bin/env bash
# End-to-end test of the browser inspector (web/) in Debian's headless Chromium.
#
#   tests/browser/run.sh                 good, tampered and truncated bundles; screenshots in
#                                        target/browser/
#   BENCH_MIB=1024 tests/browser/run.sh  only the page's MB/s on a 1 GiB bundle
#
# Builds the wasm (web/build.sh) if web/pkg is missing or older than the Rust sources, makes
# the test bundles with the make_test_bundle example (nothing binary is committed), installs
# playwright-core from npm into tests/browser/node_modules once, and serves web/ on a
# loopback port from the test itself. Needs /usr/bin/chromium (Debian's chromium package).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/browser
mkdir -p "$OUT"

if [[ ! -x ${CHROMIUM:-/usr/bin/chromium} ]]; then
    echo "browser test: ${CHROMIUM:-/usr/bin/chromium} not found (apt-get install chromium)" >&2
    exit 1
fi
newest_src=$(find core/src host-wasm/src host-wasm/Cargo.toml core/Cargo.toml .cargo/config.toml -newer web/pkg/ddiff_wasm_bg.wasm 2>/dev/null | head -1 || true)
if [[ ! -f web/pkg/ddiff_wasm_bg.wasm || -n $newest_src ]]; then
    web/build.sh
fi
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
    (cd tests/browser && npm install --no-audit --no-fund --loglevel=error)
fi

if [[ -n ${BENCH_MIB:-} ]]; then
    cargo run -q --release -p ddiff --example make_test_bundle -- "$OUT/bench" --big-mib "$BENCH_MIB"
    BENCH="$OUT/bench/good.bundle" node tests/browser/test.mjs web "$OUT/bench" "$OUT"
else
    cargo run -q -p ddiff --example make_test_bundle -- "$OUT/bundles"
    # A 5 MiB file in a layer: several 1 MiB reads, so buffers are handed back and reused.
    cargo run -q -p ddiff --example make_test_bundle -- "$OUT/bundles-5m" --big-mib 5
    BIG_BUNDLE="$OUT/bundles-5m/good.bundle" node tests/browser/test.mjs web "$OUT/bundles" "$OUT"
fi
