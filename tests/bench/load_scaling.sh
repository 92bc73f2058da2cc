#!/usr/bin/env bash
# Load scaling benchmark (issue 15 item 4): `ddiff load` against `ddiff verify` on synthetic
# bundles from 1 to 100,000 entries and 1 to 10,000 targets, and original-format (.tar.gz)
# bundles of 250 to 4,000 layers. For each shape, the median of RUNS runs of:
#   verify          ddiff verify BUNDLE
#   load oci:       ddiff load BUNDLE --to oci:DIR          (a fresh layout each run)
#   tar -x          tar -xf BUNDLE into a fresh directory   (the floor: creating the same files)
#   load server     ddiff load BUNDLE --to docker://127.0.0.1:PORT --no-pull, into a fresh
#                   `ddiff server` (only bundles of at most SERVER_MAX entries)
# and the peak RSS of the oci: load (/usr/bin/time -v's "Maximum resident set size").
# Bundles are made by the `synth_bundle` example (tiny layers: this measures per-entry and
# per-target cost, not bytes). Not part of CI.
#
# Usage: tests/bench/load_scaling.sh            (every shape)
#        SHAPES="v1:1:1000:1000 legacy:250" tests/bench/load_scaling.sh
# Env: RUNS (3), SERVER_MAX (2000), DDIFF_BIN and SYNTH_BIN (prebuilt binaries instead of
# cargo build --release), OUT (target/bench/load_scaling.md), WORK (a directory on the
# filesystem to measure; default a new one under /tmp).
# A shape is v1:TARGETS:LAYERS:LAYERS_PER_TARGET[:shared] or legacy:LAYERS.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
RUNS=${RUNS:-3}
SERVER_MAX=${SERVER_MAX:-2000}
OUT=${OUT:-$root/target/bench/load_scaling.md}
SHAPES=${SHAPES:-"v1:1:1:1 v1:1:1000:1000 v1:1:10000:10000 v1:100:10000:100 v1:10000:10000:1 v1:1000:98000:98 v1:10000:2:2:shared legacy:250 legacy:1000 legacy:4000"}
mkdir -p "$(dirname "$OUT")"
for tool in /usr/bin/time tar sha256sum; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
if [[ -n ${DDIFF_BIN:-} && -n ${SYNTH_BIN:-} ]]; then
  ddiff=$DDIFF_BIN
  synth=$SYNTH_BIN
else
  cargo build --release -q -p ddiff --bin ddiff --example synth_bundle
  ddiff=${CARGO_TARGET_DIR:-$root/target}/release/ddiff
  synth=${CARGO_TARGET_DIR:-$root/target}/release/examples/synth_bundle
fi
work=${WORK:-$(mktemp -d /tmp/ddiff-bench-load-XXXXXX)}
mkdir -p "$work"
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  if [[ -z ${WORK:-} ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

base_blob='synthetic base layer'
base_hex=$(printf '%s' "$base_blob" | sha256sum | cut -d' ' -f1)

# timed NAME CMD...: runs CMD under /usr/bin/time -v, appends "seconds max_rss_kib" to $work/NAME
timed() {
  local name=$1; shift
  /usr/bin/time -v -o "$work/tv" "$@" >"$work/out" 2>"$work/err" ||
    { echo "bench: failed: $*" >&2; cat "$work/err" >&2; exit 1; }
  local wall rss
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/tv" |
    awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/tv")
  echo "$wall $rss" >>"$work/$name"
}

# median FILE COLUMN
median() { sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'; }

fresh_layout() {
  rm -rf "$work/layout"
  if [[ $1 == legacy ]]; then
    mkdir -p "$work/layout/blobs/sha256"
    printf '%s' "$base_blob" >"$work/layout/blobs/sha256/$base_hex"
  fi
}

# start_server: a fresh `ddiff server`; sets server_pid and addr (not in a subshell, so that
# stop_server can stop it).
start_server() {
  rm -rf "$work/srv"
  "$ddiff" server --addr 127.0.0.1:0 --root "$work/srv" >"$work/srv.out" 2>"$work/srv.log" &
  server_pid=$!
  for _ in $(seq 200); do grep -q listening "$work/srv.out" 2>/dev/null && break; sleep 0.05; done
  addr=$(sed -n 's#.*listening on http://\([^ ]*\).*#\1#p' "$work/srv.out")
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  rm -rf "$work/srv"
}

rows=()
started=$(date +%s)
for shape in $SHAPES; do
  IFS=: read -r kind a b c d <<<"$shape"
  rm -f "$work"/{verify,load,tarx,server}
  if [[ $kind == v1 ]]; then
    bundle=$work/b.ddiff
    made=$("$synth" v1 "$bundle" "$a" "$b" "$c" 4 "${d:-distinct}")
    entries=${made%% blobs*}
    targets=$a
    label="$a target(s), $b layer(s), $c per target${d:+, shared images}"
  else
    bundle=$work/b.tar.gz
    "$synth" legacy "$bundle" "$a" 1000 >/dev/null
    entries=$((a + 2))
    targets=1
    label="original .tar.gz, $a layers of 1000 B"
  fi
  size=$(stat -c %s "$bundle")
  echo "bench: $label ($entries entries, $size bytes)" >&2
  for _ in $(seq "$RUNS"); do
    sync
    timed verify "$ddiff" --quiet verify --no-checksum "$bundle"
    fresh_layout "$kind"
    sync
    timed load "$ddiff" --quiet load "$bundle" --to "oci:$work/layout"
    rm -rf "$work/x" && mkdir -p "$work/x"
    sync
    timed tarx tar -xf "$bundle" -C "$work/x"
    if (( entries <= SERVER_MAX )); then
      start_server
      if [[ $kind == legacy ]]; then
        # The base, as the original tool's load expects it: in the base's repository.
        printf '%s' "$base_blob" >"$work/base.blob"
        curl -sf -X POST -H 'Content-Length: 0' -D "$work/h" -o /dev/null "http://$addr/v2/synth/base/blobs/uploads/"
        loc=$(sed -n 's/^[Ll]ocation: *\([^\r]*\).*/\1/p' "$work/h")
        [[ $loc == http* ]] || loc="http://$addr$loc"
        sep='?'; [[ $loc == *\?* ]] && sep='&'
        curl -sf -X PUT --data-binary @"$work/base.blob" -H 'Content-Type: application/octet-stream' \
          "$loc${sep}digest=sha256:$base_hex" -o /dev/null
      fi
      timed server "$ddiff" --quiet load "$bundle" --no-pull --to "docker://$addr"
      stop_server
    fi
  done
  v=$(median "$work/verify" 1)
  l=$(median "$work/load" 1)
  rss=$(median "$work/load" 2)
  t=$(median "$work/tarx" 1)
  ratio=$(awk -v l="$l" -v v="$v" 'BEGIN { printf "%.1f", (v > 0 ? l / v : 0) }')
  if [[ -s $work/server ]]; then
    s=$(median "$work/server" 1)
    sratio=$(awk -v l="$s" -v v="$v" 'BEGIN { printf "%.1f", (v > 0 ? l / v : 0) }')
    srv="$s s | ${sratio}x"
  else
    srv="– | –"
  fi
  rows+=("| $label | $entries | $targets | $((size / 1024)) KiB | $v s | $l s | ${ratio}x | $((rss / 1024)) MiB | $t s | $srv |")
done

{
  echo "Load scaling, median of $RUNS, $(date -u +%Y-%m-%dT%H:%MZ), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, work dir $work ($(df -T "$work" | awk 'NR == 2 { print $2 }'))"
  echo
  echo "| bundle | entries | targets | size | verify | load oci: | load/verify | load peak RSS | tar -x (floor) | load ddiff server | server/verify |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Total $(( $(date +%s) - started )) s."
} | tee "$OUT"
