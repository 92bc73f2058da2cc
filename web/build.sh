#!/usr/bin/env bash
# Builds the browser inspector's wasm into web/pkg/ (ddiff_wasm.js + ddiff_wasm_bg.wasm).
#
#   web/build.sh            release build (what ddiff server embeds and the browser test uses)
#
# Installs what is missing: the wasm32-unknown-unknown target (rustup) and wasm-bindgen-cli
# at exactly the version host-wasm pins (cargo install, ~400 s once; ~/.cargo/bin keeps it).
# wasm-opt is NOT run by default: Debian's binaryen 108 breaks wasm-bindgen 0.2.130 output in
# Chromium. Set DDIFF_WASM_OPT=/path/to/wasm-opt (e.g. npm's binaryen >= 116) to use one.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WBG_VERSION=0.2.130
OUT=web/pkg
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WBG_VERSION\$"; then
    echo "build.sh: installing wasm-bindgen-cli $WBG_VERSION (several minutes, once)" >&2
    cargo install wasm-bindgen-cli --version "$WBG_VERSION"
fi

cargo build -p ddiff-wasm --target wasm32-unknown-unknown --release
mkdir -p "$OUT"
wasm-bindgen --target web --no-typescript --out-dir "$OUT" \
    "$TARGET_DIR/wasm32-unknown-unknown/release/ddiff_wasm.wasm"
if [[ -n ${DDIFF_WASM_OPT:-} ]]; then
    "$DDIFF_WASM_OPT" -O3 --enable-bulk-memory --enable-nontrapping-float-to-int \
        "$OUT/ddiff_wasm_bg.wasm" -o "$OUT/ddiff_wasm_bg.wasm.opt"
    mv "$OUT/ddiff_wasm_bg.wasm.opt" "$OUT/ddiff_wasm_bg.wasm"
fi
ls -l "$OUT"
