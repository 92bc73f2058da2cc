#!/usr/bin/env bash
# Where the time of a registry load goes (issue 16): `ddiff load` into a registry holding the
# base, then into Docker, split into ddiff's own work (verify + upload: `load --no-pull`) and
# the pull into the engine (`ddiff pull`: ddiff streams the layers, the engine applies them),
# with the CPU time of the ddiff process in each, so the figure means something on engines
# whose storage driver is faster than this VM's `vfs`.
#
# Images: `ddiff demo --keep` (base BASE_MB in 3 layers, app adds APP_MB in 2 layers), pulled
# into the engine from a `ddiff server`; the bundle is made from the engine (`ddiff diff
# demo/base:1 demo/app:2`), as a user of the original tool would.
# Needs a Docker engine (tests/peers.sh start). Usage: tests/bench/load_split.sh [BASE_MB] [APP_MB] [RUNS]
# (defaults 256 100 3). DDIFF_BIN: a ddiff binary instead of building target/release/ddiff.
set -euo pipefail
BASE_MB=${1:-256}
APP_MB=${2:-100}
RUNS=${3:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export DOCKER_HOST=${DOCKER_HOST:-${DDIFF_TEST_DOCKER_HOST:-}}
OUT=${OUT:-$root/target/bench/load_split.md}
mkdir -p "$(dirname "$OUT")"
# shellcheck source=tests/lib/bench.sh
. "$root/tests/lib/bench.sh"
work=$(mktemp -d /tmp/ddiff-bench-split-XXXXXX)
cleanup() {
  bench_stop_servers "$work"
  bench_stop_servers "$work/demo"
  rm -rf "$work"
}
trap cleanup EXIT
docker version >/dev/null || { echo "bench: no Docker engine at DOCKER_HOST=$DOCKER_HOST" >&2; exit 1; }
ddiff=$(bench_ddiff "$root")
serve() { bench_serve "$ddiff" "$1"; }
echo "bench: generating a ${BASE_MB} MB base and a ${APP_MB} MB app" >&2
"$ddiff" demo --quiet --base-mb "$BASE_MB" --app-mb "$APP_MB" --keep "$work/demo" >/dev/null
online=$(serve "$work/demo/online")
docker rmi -f demo/app:2 demo/base:1 >/dev/null 2>&1 || true
DDIFF_URL=http://$online "$ddiff" --quiet pull demo/base:1 demo/app:2 >/dev/null
"$ddiff" --quiet diff demo/base:1 demo/app:2 -o "$work/app.ddiff" >/dev/null

: >"$work/times"
for run in $(seq "$RUNS"); do
  # A fresh offline registry holding only the base; the engine without the app.
  mkdir -p "$work/off$run"
  off=$(serve "$work/off$run")
  DDIFF_URL=http://$off "$ddiff" --quiet push demo/base:1 >/dev/null
  docker rmi demo/app:2 >/dev/null 2>&1 || true
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$work/t1" "$ddiff" --quiet load "$work/app.ddiff" \
    --to "docker://$off" --no-pull >/dev/null
  /usr/bin/time -f "%e %U %S %M" -o "$work/t2" env DDIFF_URL="http://$off" "$ddiff" --quiet \
    pull demo/app:2 >/dev/null
  docker image inspect demo/app:2 >/dev/null
  docker rmi demo/app:2 >/dev/null
  # The whole load in one command, into another fresh registry.
  mkdir -p "$work/all$run"
  all=$(serve "$work/all$run")
  DDIFF_URL=http://$all "$ddiff" --quiet push demo/base:1 >/dev/null
  /usr/bin/time -f "%e %U %S %M" -o "$work/t3" "$ddiff" --quiet load "$work/app.ddiff" \
    --to "docker://$all" >/dev/null
  docker image inspect demo/app:2 >/dev/null
  echo "$(cat "$work/t1") $(cat "$work/t2") $(cat "$work/t3")" >>"$work/times"
done
python3 - "$work/times" "$(stat -c %s "$work/app.ddiff")" "$BASE_MB" "$APP_MB" "$RUNS" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(docker info --format '{{.Driver}}')" >"$OUT" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
size, base_mb, app_mb, runs = map(int, sys.argv[2:6])
load, driver = sys.argv[6:8]
med = lambda i: statistics.median(r[i] for r in rows)
print(f"Base {base_mb} MB, app adds {app_mb} MB; bundle {size:,} B from the engine; storage "
      f"driver {driver}; medians of {runs} runs; load average at the end {load}.\n")
print("| step | wall (s) | ddiff CPU user+sys (s) | peak RSS (MiB) |")
print("|---|---:|---:|---:|")
names = ["load --no-pull (verify + upload)", "pull into Docker (stream + engine applies)",
         "load with the pull, one command"]
for k, n in enumerate(names):
    b = 4 * k
    print(f"| {n} | {med(b):.2f} | {med(b + 1) + med(b + 2):.2f} | {med(b + 3) / 1024:.1f} |")
w = med(8)
pull_wall, pull_cpu = med(4), med(5) + med(6)
print(f"\nOf the one-command load ({w:.2f} s), the registry part takes {med(0):.2f} s and the "
      f"pull {pull_wall:.2f} s, in which the ddiff process used {pull_cpu:.2f} s of CPU: the "
      f"rest of the pull is the engine applying the layers ({driver}).")
PY
cat "$OUT"
