#!/usr/bin/env bash
# goflate's speed against Go itself and GNU gzip, on a real tar of this machine's files:
# /usr/lib/x86_64-linux-gnu then /usr/share/doc, cut at SIZE_MB. For each level, the CPU
# seconds (user+sys, best of RUNS) of Go 1.x's compress/gzip (a tiny program built here),
# goflate (`gogzip` example, release) and `gzip -N`, MB/s of input, the output size as a
# ratio of the input, and whether goflate's output equals Go's byte for byte.
#
# Needs `go` (golang-go). Usage: tests/bench/goflate.sh [SIZE_MB] [RUNS] [LEVELS...]
# (defaults 80 3 6 1). Prints a markdown table; writes it to $OUT
# (default target/bench/goflate.md).
set -euo pipefail
SIZE_MB=${1:-80}
RUNS=${2:-3}
shift 2 2>/dev/null || shift $#
LEVELS=("$@")
((${#LEVELS[@]})) || LEVELS=(6 1)
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-$root/target/bench/goflate.md}
mkdir -p "$(dirname "$OUT")"
work=$(mktemp -d /tmp/goflate-bench-XXXXXX)
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

cargo build -q --release -p ddiff-goflate --example gogzip
gogzip=${CARGO_TARGET_DIR:-$root/target}/release/examples/gogzip

cat >"$work/main.go" <<'GO'
package main

import (
	"compress/gzip"
	"io"
	"os"
	"strconv"
)

func main() {
	level, _ := strconv.Atoi(os.Args[1])
	w, err := gzip.NewWriterLevel(os.Stdout, level)
	if err != nil {
		panic(err)
	}
	if _, err := io.Copy(w, os.Stdin); err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
}
GO
(cd "$work" && GOCACHE=$work/cache GOPATH=$work/gopath GO111MODULE=off go build -o gogz main.go)
gover=$(go version | cut -d' ' -f3)

# The tar, cut at SIZE_MB (a cut tar is as good an input as any).
(tar -C / -cf - usr/lib/x86_64-linux-gnu usr/share/doc 2>/dev/null || true) |
    head -c $((SIZE_MB << 20)) >"$work/in.tar"
in_bytes=$(stat -c %s "$work/in.tar")

# cpu CMD...: best user+sys seconds of RUNS runs of CMD <in.tar >out
cpu() {
    local best="" t i
    for ((i = 0; i < RUNS; i++)); do
        t=$({ TIMEFORMAT='%U %S'; time "$@" <"$work/in.tar" >"$work/out"; } 2>&1 | awk '{print $1 + $2}')
        if [[ -z $best ]] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$t; fi
    done
    echo "$best"
}
mbs() { awk -v b="$in_bytes" -v s="$1" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
ratio() { awk -v b="$in_bytes" -v o="$(stat -c %s "$work/out")" 'BEGIN { printf "%.3f", o / b }'; }

{
    echo "goflate vs $gover compress/gzip vs GNU gzip: $((in_bytes >> 20)) MiB tar of /usr/lib/x86_64-linux-gnu + /usr/share/doc, CPU s (user+sys, best of $RUNS)"
    echo
    echo "| level | Go s | Go MB/s | goflate s | goflate MB/s | same bytes as Go | gzip -N s | gzip MB/s | Go/goflate ratio | gzip ratio |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for level in "${LEVELS[@]}"; do
        tg=$(cpu "$work/gogz" "$level")
        cp "$work/out" "$work/go.gz"
        rg=$(ratio)
        tr=$(cpu "$gogzip" "$level")
        same=no
        cmp -s "$work/out" "$work/go.gz" && same=yes
        if ((level >= 1)); then
            tz=$(cpu gzip "-$level" -n)
            zr=$(ratio)
            zs="$tz | $(mbs "$tz")"
        else
            zr=-
            zs="- | -"
        fi
        echo "| $level | $tg | $(mbs "$tg") | $tr | $(mbs "$tr") | $same | $zs | $rg | $zr |"
    done
} | tee "$OUT"
