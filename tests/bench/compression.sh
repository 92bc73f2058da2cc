#!/usr/bin/env bash
# Layer compression, bytes against time (issue 16): what `ddiff diff` carries for layers it
# compresses itself (engine and docker-archive sources) at each setting, side by side with
# what `docker push` stores for the same layers, which is what the original DockerDiff carries.
#
# The app is real content of this Debian machine, in three layers: shared libraries
# (/usr/lib/x86_64-linux-gnu), the Python standard library and documentation (/usr/share/doc),
# each cut at SIZE_MB. It is built FROM the test base image in the engine, pushed to a
# `ddiff server` by the engine (`docker push`: Go's gzip), and saved with `docker save`; ddiff
# then diffs the docker-archive files (compression alone, no engine export in the timing).
#
# Needs a Docker engine (tests/peers.sh start). Usage: tests/bench/compression.sh [SIZE_MB] [RUNS]
# (defaults 100 3). DDIFF_BIN: a ddiff binary to use instead of building target/release/ddiff.
# Prints a markdown table (medians of RUNS) and writes it to $OUT (default target/bench/compression.md).
set -euo pipefail
SIZE_MB=${1:-100}
RUNS=${2:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export DOCKER_HOST=${DOCKER_HOST:-${DDIFF_TEST_DOCKER_HOST:-}}
export DOCKER_BUILDKIT=0
BASE=${DDIFF_TEST_BASE_IMAGE:-bb:base}
OUT=${OUT:-$root/target/bench/compression.md}
mkdir -p "$(dirname "$OUT")"
# shellcheck source=tests/lib/bench.sh
. "$root/tests/lib/bench.sh"
work=$(mktemp -d /tmp/ddiff-bench-compression-XXXXXX)
cleanup() {
  bench_stop_servers "$work"
  docker rmi -f bench/cx:1 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
for tool in docker /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
docker version >/dev/null || { echo "bench: no Docker engine at DOCKER_HOST=$DOCKER_HOST" >&2; exit 1; }
ddiff=$(bench_ddiff "$root")

# The content: the first SIZE_MB of each source, in a stable order.
take() { # DIR DEST
  local src=$1 dest=$2 budget=$((SIZE_MB * 1048576)) used=0 f s
  mkdir -p "$dest"
  while IFS= read -r f; do
    s=$(stat -c %s "$f")
    ((used + s > budget)) && continue
    mkdir -p "$dest/$(dirname "${f#"$src"/}")"
    cp "$f" "$dest/${f#"$src"/}"
    used=$((used + s))
    if ((used >= budget - 65536)); then break; fi
  done < <(find "$src" -type f ! -type l | LC_ALL=C sort)
  return 0
}
echo "bench: collecting ${SIZE_MB} MB each of libraries, Python and docs" >&2
take /usr/lib/x86_64-linux-gnu "$work/ctx/libs"
take /usr/lib/python3.11 "$work/ctx/py"
take /usr/share/doc "$work/ctx/doc"
printf 'FROM %s\nCOPY libs /l/\nCOPY py /p/\nCOPY doc /d/\n' "$BASE" >"$work/ctx/Dockerfile"
docker build -q --network none -t bench/cx:1 "$work/ctx" >/dev/null

# What docker push stores (= what the original tool carries, before its outer gzip).
mkdir -p "$work/reg"
reg=$(bench_serve "$ddiff" "$work/reg")
docker tag bench/cx:1 "$reg/bench/cx:1"
docker push -q "$reg/bench/cx:1" >/dev/null
docker rmi "$reg/bench/cx:1" >/dev/null
"$ddiff" --json list "docker://$reg/bench/cx:1" >"$work/pushed.json"

docker save "$BASE" -o "$work/base.tar"
docker save bench/cx:1 -o "$work/app.tar"
: >"$work/times"
# measure NAME ARGS... : RUNS runs of ddiff diff with ARGS; "NAME seconds peak_kib bytes" per run
measure() {
  local name=$1 _run
  shift
  for _run in $(seq "$RUNS"); do
    rm -f "$work/b.ddiff"
    sync
    /usr/bin/time -f "%e %M" -o "$work/t" "$ddiff" --quiet diff "docker-archive:$work/base.tar" \
      "docker-archive:$work/app.tar" -o "$work/b.ddiff" "$@" >/dev/null 2>"$work/err" ||
      { cat "$work/err" >&2; exit 1; }
    echo "$name $(cat "$work/t") $(stat -c %s "$work/b.ddiff")" >>"$work/times"
  done
}
measure "gzip 6 (--fast)" --fast
measure "gzip 7" --level 7
measure "gzip 9 (default)"
measure "zstd 3 (--compression zstd)" --compression zstd
measure "zstd 9" --compression zstd --level 9
measure "gzip 9, --threads 1" --threads 1

load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$work/times" "$work/pushed.json" "$SIZE_MB" "$RUNS" "$load" \
  "$(docker version --format '{{.Server.Version}}')" >"$OUT" <<'PY'
import json, statistics, sys
times, pushed, size_mb, runs, load, engine = sys.argv[1:7]
blobs = json.load(open(pushed))
blobs = blobs.get("blobs", blobs) if isinstance(blobs, dict) else blobs
layers = [b for b in blobs if b.get("role") == "layer"]
# The app's three new layers are the last three; the base's are before them.
push_layers = sum(b["size"] for b in layers[-3:])
rows = {}
for line in open(times):
    name, rest = line.rsplit(" ", 3)[0], line.rsplit(" ", 3)[1:]
    rows.setdefault(name, []).append((float(rest[0]), int(rest[1]), int(rest[2])))
print(f"{size_mb} MB each of shared libraries, the Python standard library and /usr/share/doc "
      f"(three layers, {3 * int(size_mb)} MB), Docker {engine}; medians of {runs} runs; "
      f"load average at the end {load}.\n")
print(f"`docker push` stores these three layers in **{push_layers:,} B** (Go's gzip): what the "
      f"original DockerDiff carries, before its outer gzip.\n")
print("| setting | bundle bytes | vs docker push layers | time (s) | MB/s | peak RSS (MiB) |")
print("|---|---:|---:|---:|---:|---:|")
for name, rs in rows.items():
    t = statistics.median(r[0] for r in rs)
    k = statistics.median(r[1] for r in rs)
    b = statistics.median(r[2] for r in rs)
    print(f"| {name} | {b:,} | {b / push_layers:.4f}x | {t:.2f} | {3 * int(size_mb) / t:.0f} | {k / 1024:.1f} |")
print("\nBundle bytes include the config, the manifest and the bundle's metadata (a few kB); "
      "the docker push figure is the layers alone.")
PY
cat "$OUT"
