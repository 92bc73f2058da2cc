#!/usr/bin/env bash
# Benchmark of the engine workflow (issue 5, "No registry needed"), side by side in one run:
#   ddiff diff / ddiff build from the engine + ddiff load into it   (carry only the new layers)
#   docker save app | gzip  +  docker load                          (how users do it today)
# Images: the registry benchmark's (`ddiff demo --keep`: base 1024 MB of content in 3 layers,
# app adds 100 MB in 2 layers, half random and half text), brought into the engine with
# `ddiff pull` from a `ddiff server` serving the demo's storage.
# Needs a Docker engine (DOCKER_HOST or DDIFF_TEST_DOCKER_HOST, e.g. tests/peers.sh start).
# Usage: tests/bench/engine.sh [BASE_MB] [APP_MB]    (defaults 1024 100)
# DDIFF_BIN: a ddiff binary to use instead of building target/release/ddiff.
# Prints a markdown table; writes it to $OUT (default target/bench/engine.md).
set -euo pipefail
BASE_MB=${1:-1024}
APP_MB=${2:-100}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export DOCKER_HOST=${DOCKER_HOST:-${DDIFF_TEST_DOCKER_HOST:-}}
export DOCKER_BUILDKIT=0
work=$(mktemp -d /tmp/ddiff-bench-engine-XXXXXX)
OUT=${OUT:-$root/target/bench/engine.md}
mkdir -p "$(dirname "$OUT")"
# shellcheck source=tests/lib/bench.sh
. "$root/tests/lib/bench.sh"
cleanup() {
  bench_stop_servers "$work/demo"
  rm -rf "$work"
}
trap cleanup EXIT
for tool in docker gzip /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
docker version >/dev/null || { echo "bench: no Docker engine at DOCKER_HOST=$DOCKER_HOST" >&2; exit 1; }
ddiff=$(bench_ddiff "$root")

echo "bench: generating a ${BASE_MB} MB base and a ${APP_MB} MB app" >&2
"$ddiff" demo --quiet --base-mb "$BASE_MB" --app-mb "$APP_MB" --keep "$work/demo" >/dev/null
reg=$(bench_serve "$ddiff" "$work/demo/online")
docker rmi -f demo/app:2 demo/base:1 bench/app:3 >/dev/null 2>&1 || true
echo "bench: ddiff pull into the engine from $reg" >&2
DDIFF_URL=http://$reg "$ddiff" --quiet pull demo/base:1 demo/app:2 >/dev/null

# measure NAME CMD... : appends "NAME seconds peak_kib cpu% user_seconds" to $work/times
measure() {
  local name=$1; shift
  sync
  /usr/bin/time -f "%e %M %P %U" -o "$work/t" "$@" >/dev/null 2>"$work/err" ||
    { cat "$work/err" >&2; exit 1; }
  echo "$name $(cat "$work/t")" >>"$work/times"
}

# Warm-up, charged to no one: the first export after a pull reads every vfs layer from disk
# (cold: ddiff diff 14.1 s; warm: 9.0-9.4 s, with `docker save | cat` at 10.3 s). Without it
# the first measured step, ddiff's, paid for the cold cache and docker save | gzip did not.
docker save demo/app:2 >/dev/null
# Bundling from the engine (gzip, default level 6, all cores; then one core for comparison).
measure ddiff_diff "$ddiff" --quiet diff demo/base:1 demo/app:2 -o "$work/app.ddiff"
measure ddiff_diff_1core "$ddiff" --quiet diff demo/base:1 demo/app:2 --threads 1 -o "$work/app1.ddiff"
measure ddiff_diff_zstd "$ddiff" --quiet diff demo/base:1 demo/app:2 --compression zstd -o "$work/appz.ddiff"
# ddiff build: an app adding APP_MB to the base (needs the busybox image of tests/peers.sh); docker build once uncached (reported), then
# ddiff build with the build cache warm, so the row is the bundling work of `ddiff build`.
mkdir -p "$work/ctx"
half=$((APP_MB * 1048576 / 2))
# shellcheck disable=SC2016  # ${BASE} is for the Dockerfile
# The demo base has no shell: generate in a busybox stage, copy into the base (multi-stage,
# ARG in FROM, as ddiff build must handle).
printf 'ARG BASE=demo/base:1\nFROM %s AS gen\nRUN head -c %d /dev/urandom > /r && yes "ddiff bench text line" | head -c %d > /t\nFROM ${BASE}\nCOPY --from=gen /r /t /app/\n' \
  "${DDIFF_TEST_BASE_IMAGE:-bb:base}" "$half" "$half" >"$work/ctx/Dockerfile"
measure docker_build docker build -q --network none -t bench/app:3 "$work/ctx"
measure ddiff_build "$ddiff" --quiet build --bundle "$work/app3.ddiff" -q --network none -t bench/app:3 "$work/ctx"
# The way users move it today.
measure docker_save_gzip sh -c "docker save demo/app:2 | gzip > '$work/app.tar.gz'"
# Compression alone, without the engine's export: the same images as docker-archive files.
docker save demo/base:1 -o "$work/base.tar"
docker save demo/app:2 -o "$work/app.tar"
measure archive_diff "$ddiff" --quiet diff docker-archive:"$work/base.tar" docker-archive:"$work/app.tar" -o "$work/arch.ddiff"
measure archive_diff_1core "$ddiff" --quiet diff docker-archive:"$work/base.tar" docker-archive:"$work/app.tar" --threads 1 -o "$work/arch1.ddiff"
rm -f "$work/base.tar" "$work/app.tar"
# Loads: each into an engine that has the base and not the app.
docker rmi demo/app:2 >/dev/null
measure ddiff_load "$ddiff" --quiet load "$work/app.ddiff" --to docker-daemon:
docker rmi demo/app:2 >/dev/null
measure docker_load docker load -i "$work/app.tar.gz"
sz() { stat -c %s "$1"; }
python3 - "$work/times" "$(sz "$work/app.ddiff")" "$(sz "$work/appz.ddiff")" "$(sz "$work/app.tar.gz")" \
  "$(sz "$work/app3.ddiff")" "$BASE_MB" "$APP_MB" "$(docker version --format '{{.Server.Version}}')" >"$OUT" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    n, s, k, p, u = line.split()
    rows[n] = (float(s), int(k), p, float(u))
bundle, bundle_z, full, bundle3, base_mb, app_mb = map(int, sys.argv[2:8])
engine = sys.argv[8]
def r(a, b): return f"{a / b:.1f}x" if b else "n/a"
print(f"Base {base_mb} MB of content, app adds {app_mb} MB (the registry benchmark's images, "
      f"pulled into Docker {engine}, vfs). One run, same machine.\n")
print("| step | time (s) | peak RSS (MiB) | CPU | user CPU (s) |")
print("|---|---:|---:|---:|---:|")
for n in ["ddiff_diff", "ddiff_diff_1core", "ddiff_diff_zstd", "docker_build", "ddiff_build",
          "docker_save_gzip", "archive_diff", "archive_diff_1core", "ddiff_load", "docker_load"]:
    s, k, p, u = rows[n]
    print(f"| {n.replace('_', ' ')} | {s:.2f} | {k/1024:.1f} | {p} | {u:.2f} |")
d, g = rows["ddiff_diff"][0], rows["docker_save_gzip"][0]
print()
print(f"- bytes to carry: bundle {bundle:,} B (zstd: {bundle_z:,} B) vs `docker save | gzip` "
      f"{full:,} B: **{r(full, bundle)} fewer** (goal: 5x)")
print(f"- time to make it: ddiff diff {d:.2f}s vs docker save | gzip {g:.2f}s: **{r(g, d)} less** "
      f"(goal: 3x); ddiff build (cached docker build + bundle) {rows['ddiff_build'][0]:.2f}s, "
      f"bundle {bundle3:,} B")
a, a1 = rows["archive_diff"], rows["archive_diff_1core"]
print(f"- compression, docker-archive files (no engine), {app_mb} MB carried: {a[0]:.2f}s at "
      f"{a[2]} CPU ({app_mb / a[0]:.0f} MB/s) vs {a1[0]:.2f}s at {a1[2]} ({app_mb / a1[0]:.0f} MB/s) "
      f"with --threads 1")
print(f"- load: ddiff load {rows['ddiff_load'][0]:.2f}s vs docker load of the full archive "
      f"{rows['docker_load'][0]:.2f}s: **{r(rows['docker_load'][0], rows['ddiff_load'][0])} less**")
print(f"- peak RSS: ddiff diff {rows['ddiff_diff'][1]/1024:.1f} MiB, ddiff load "
      f"{rows['ddiff_load'][1]/1024:.1f} MiB (client processes only; the engine's own work "
      f"is not in these figures for either side)")
PY
cat "$OUT"
docker rmi -f bench/app:3 >/dev/null 2>&1 || true
