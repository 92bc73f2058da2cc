#!/usr/bin/env bash
# The whole test suite in one command, peers included:
#
#   tests/run-all.sh                  everything
#   tests/run-all.sh -p ddiff-core    extra arguments go to `cargo test --workspace`
#
# 1. starts a private Docker engine with tests/peers.sh (stopped again on exit),
# 2. runs `cargo test --workspace --no-fail-fast` with DDIFF_REQUIRE_PEERS=1, so an
#    integration test whose peer is missing fails instead of skipping,
# 3. runs tests/browser/run.sh and every tests/e2e/*.sh that exist, each as one suite,
# 4. prints what ran and a last line `N passed, N failed`: cargo's tests counted one by
#    one from its `test result:` lines, each extra suite counted as one test.
# Exits non-zero if anything failed.
#
# Env:
#   DDIFF_PEERS_DIR         use (and leave running, if it already ran) this engine's dir;
#                           unset: a fresh dir under /tmp, deleted on exit
#   DDIFF_SUITE_TIMEOUT     seconds for each extra suite (default 1200)
#   DDIFF_CARGO_TIMEOUT     seconds for cargo test, build included (default 2700)
# Extra suites get the peers' env plus DDIFF_REPO_ROOT and DDIFF_BIN (the debug ddiff binary).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SUITE_TIMEOUT=${DDIFF_SUITE_TIMEOUT:-1200}
CARGO_TIMEOUT=${DDIFF_CARGO_TIMEOUT:-2700}

say() { printf '\n=== %s\n' "$*"; }

# --- peers --------------------------------------------------------------------------------
own_dir=0
leave_running=0
if [[ -z ${DDIFF_PEERS_DIR:-} ]]; then
    DDIFF_PEERS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ddiff-run-XXXXXX")
    own_dir=1
elif bash tests/peers.sh status >/dev/null 2>&1; then
    leave_running=1
fi
export DDIFF_PEERS_DIR

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/ddiff-run-logs-XXXXXX")

peers_stopped=0
stop_peers() {
    ((peers_stopped)) && return 0
    peers_stopped=1
    if ((leave_running)); then
        echo "run-all: leaving the engine in $DDIFF_PEERS_DIR running (it was running before)"
    elif ((own_dir)); then
        bash tests/peers.sh stop --purge || echo "run-all: warning: could not stop the peers" >&2
    else
        bash tests/peers.sh stop || echo "run-all: warning: could not stop the peers" >&2
    fi
}
cleanup() {
    local rc=$?
    stop_peers
    rm -rf "$LOGDIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "peers: tests/peers.sh start ($DDIFF_PEERS_DIR)"
bash tests/peers.sh start
# shellcheck source=/dev/null  # written by peers.sh start
. "$DDIFF_PEERS_DIR/env"
export DDIFF_REQUIRE_PEERS=1
export DDIFF_REPO_ROOT=$ROOT

passed=0
failed=0
report=()

# --- cargo test ---------------------------------------------------------------------------
say "cargo test --workspace --no-fail-fast $*"
cargo_log=$LOGDIR/cargo-test.log
start=$SECONDS
set +e
timeout -k 30 "$CARGO_TIMEOUT" cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$cargo_log"
cargo_rc=${PIPESTATUS[0]}
set -e
# "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ..."
read -r c_pass c_fail c_ign c_bins < <(awk '
    /^test result: / {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed;?$/) p += $i
            if ($(i + 1) ~ /^failed;?$/) f += $i
            if ($(i + 1) ~ /^ignored;?$/) g += $i
        }
        n++
    }
    END { printf "%d %d %d %d\n", p, f, g, n }' "$cargo_log")
passed=$((passed + c_pass))
failed=$((failed + c_fail))
line="cargo test: $c_pass passed, $c_fail failed, $c_ign ignored in $c_bins test binaries, exit $cargo_rc, $((SECONDS - start))s"
if ((cargo_rc != 0 && c_fail == 0)); then
    # no test failed, yet cargo did: a build error, a crashed test binary, a timeout
    failed=$((failed + 1))
    if ((cargo_rc == 124)); then
        line+=" (TIMED OUT after ${CARGO_TIMEOUT}s)"
    else
        line+=" (cargo failed outside any test: counted as 1 failed)"
    fi
fi
report+=("$line")

# --- extra suites -------------------------------------------------------------------------
suites=()
[[ -f tests/browser/run.sh ]] && suites+=(tests/browser/run.sh)
for f in tests/e2e/*.sh; do
    [[ -f $f ]] && suites+=("$f")
done

if ((${#suites[@]} > 0)); then
    say "cargo build -p ddiff --bins (for the extra suites)"
    if cargo build -p ddiff --bins; then
        export DDIFF_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/ddiff
    else
        failed=$((failed + 1))
        report+=("cargo build -p ddiff: FAILED (the suites below run without DDIFF_BIN)")
    fi
fi

for s in "${suites[@]}"; do
    say "suite $s"
    start=$SECONDS
    if [[ -x $s ]]; then
        cmd=("./$s")
    else
        echo "run-all: note: $s is not executable; running it with bash (chmod +x it)"
        cmd=(bash "$s")
    fi
    set +e
    timeout -k 30 "$SUITE_TIMEOUT" "${cmd[@]}" </dev/null
    rc=$?
    set -e
    if ((rc == 0)); then
        passed=$((passed + 1))
        report+=("$s: passed, $((SECONDS - start))s")
    else
        failed=$((failed + 1))
        if ((rc == 124)); then
            report+=("$s: FAILED (timed out after ${SUITE_TIMEOUT}s)")
        else
            report+=("$s: FAILED (exit $rc), $((SECONDS - start))s")
        fi
    fi
done

# --- summary ------------------------------------------------------------------------------
# Stop the peers first, so the summary is the last thing printed.
say "stopping peers"
stop_peers 2>&1
say "summary"
printf '  %s\n' "${report[@]}"
echo "$passed passed, $failed failed"
((failed == 0))
