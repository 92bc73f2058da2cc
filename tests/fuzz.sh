#!/usr/bin/env bash
# Short fuzz run of every cargo-fuzz target in fuzz/ (the parsers of ddiff-core).
#
#   tests/fuzz.sh                 # every target, 20 s each
#   FUZZ_SECONDS=300 tests/fuzz.sh bundle_decoder tar
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly compiler: the `nightly`
# toolchain when rustup has it, else the stable one with RUSTC_BOOTSTRAP=1. New inputs go to
# a scratch copy of fuzz/corpus/<target>, so the committed corpus is untouched; a crash is
# saved under fuzz/artifacts/<target>/ and makes the script fail. Targets run one after the
# other on one core (-jobs is not used: the machine is shared).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
secs=${FUZZ_SECONDS:-20}
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <("${cargo[@]}" fuzz list); fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"${cargo[@]}" fuzz build -O >/dev/null
failed=0 passed=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    log="$scratch/$t.log"
    if "${cargo[@]}" fuzz run -O "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        echo "fuzz $t: ok, $runs inputs in ${secs}s"
        passed=$((passed + 1))
    else
        echo "fuzz $t: FAILED (crash saved under fuzz/artifacts/$t/)"
        tail -n 30 "$log"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
