#!/usr/bin/env bash
# Inventory benchmark (issue 12): a set of 20 images with shared bases, generated in the test
# engine. The offline site (a `ddiff server`) holds release 1 of the 20; the online side holds
# release 2 (10 images add a layer on top of release 1, 10 are rebuilt on a patched base: the
# base's new layer is shared by 3 or 4 of them). Measures:
#   inventory     ddiff inventory docker://SITE: time, peak RSS, file size
#   set diff      ddiff diff --have INV --targets LIST: time, peak RSS, bundle bytes
#   per image     ddiff diff docker://ONLINE/img-N:1 docker://ONLINE/img-N:2 for each N:
#                 summed time and bundle bytes (what carrying them one by one costs)
#   whole set     ddiff diff scratch --targets LIST: bundle bytes (carry everything)
#   load          ddiff load SET.ddiff --to docker://SITE --no-pull: time, peak RSS
# Not part of CI. Needs the engine of tests/peers.sh and /usr/bin/time.
#
# Usage: tests/peers.sh start && . "${DDIFF_PEERS_DIR:-/tmp/ddiff-peers}/env"
#        tests/bench/inventory.sh
# Env: DDIFF_BIN (a prebuilt ddiff instead of a release build), OUT
# (target/bench/inventory.md), BASE_MB (8: each of the 3 bases' random layer), TOP_KB (1024:
# each image's own layer), PATCH_KB (2048: the patched bases' new layer).
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo_root"
source tests/lib/bench.sh
source tests/lib/images.sh
OUT=${OUT:-$repo_root/target/bench/inventory.md}
BASE_MB=${BASE_MB:-8}
TOP_KB=${TOP_KB:-1024}
PATCH_KB=${PATCH_KB:-2048}
export DOCKER_HOST=${DOCKER_HOST:-${DDIFF_TEST_DOCKER_HOST:?start the engine: tests/peers.sh start}}
mkdir -p "$(dirname "$OUT")"
command -v /usr/bin/time >/dev/null || { echo "bench: /usr/bin/time is required" >&2; exit 1; }
ddiff=$(bench_ddiff "$repo_root")
work=$(mktemp -d /tmp/ddiff-bench-inv-XXXXXX)
cleanup() { bench_stop_servers "$work"; rm -rf "$work"; }
trap cleanup EXIT

d() { DOCKER_BUILDKIT=0 docker "$@"; }
build() { # build FROM TAG LINE...
  local from=$1 tag=$2 ctx
  shift 2
  ctx=$(mktemp -d "$work/ctx-XXXXXX")
  { echo "FROM $from"; printf '%s\n' "$@"; } >"$ctx/Dockerfile"
  d build -q --network none -t "$tag" "$ctx" >/dev/null
}
# timed NAME CMD...: "seconds peak_rss_kib" into $work/NAME.t
timed() {
  local name=$1
  shift
  /usr/bin/time -v -o "$work/tv" "$@" >"$work/$name.out" 2>"$work/$name.err" ||
    { echo "bench: failed: $*" >&2; cat "$work/$name.err" >&2; exit 1; }
  local wall rss
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/tv" |
    awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/tv")
  echo "$wall $rss" >"$work/$name.t"
}
t() { cut -d' ' -f1 "$work/$1.t"; }
rss_mib() { awk '{ printf "%.0f", $2 / 1024 }' "$work/$1.t"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

echo "bench: building 6 bases and 40 images in the engine" >&2
make_busybox_base bench-inv/bb:base >/dev/null
for b in 0 1 2; do
  build bench-inv/bb:base "bench-inv/base$b:1" "RUN head -c $((BASE_MB << 20)) /dev/urandom > /base$b"
  build "bench-inv/base$b:1" "bench-inv/base$b:2" "RUN head -c $((PATCH_KB << 10)) /dev/urandom > /patch"
done
for n in $(seq 0 19); do
  b=$((n % 3))
  # The image number in each command: the build cache must not make two images share a layer.
  build "bench-inv/base$b:1" "bench-inv/img-$n:1" "RUN head -c $((TOP_KB << 10)) /dev/urandom > /top$n"
  if ((n < 10)); then
    build "bench-inv/img-$n:1" "bench-inv/img-$n:2" "RUN head -c $((TOP_KB << 10)) /dev/urandom > /top$n.2"
  else
    build "bench-inv/base$b:2" "bench-inv/img-$n:2" "RUN head -c $((TOP_KB << 10)) /dev/urandom > /top$n.2"
  fi
done
site=$(bench_serve "$ddiff" "$work/site")
online=$(bench_serve "$ddiff" "$work/online")
push() { d tag "$1" "$2" && d push "$2" >/dev/null && d rmi "$2" >/dev/null; }
: >"$work/targets.txt"
for n in $(seq 0 19); do
  push "bench-inv/img-$n:1" "$site/img-$n:1"
  push "bench-inv/img-$n:1" "$online/img-$n:1"
  push "bench-inv/img-$n:2" "$online/img-$n:2"
  echo "docker://$online/img-$n:2" >>"$work/targets.txt"
done

echo "bench: measuring" >&2
timed inventory "$ddiff" -q inventory "docker://$site" -o "$work/site.json"
inv_bytes=$(stat -c %s "$work/site.json")
inv_layers=$("$ddiff" -q --json inventory "docker://$site" -o "$work/again.json" | sed -n 's/.*"layers": \([0-9]*\).*/\1/p')
timed setdiff "$ddiff" -q diff --have "$work/site.json" --targets "$work/targets.txt" -o "$work/set.ddiff"
set_bytes=$(stat -c %s "$work/set.ddiff")
per_bytes=0
per_time=0
for n in $(seq 0 19); do
  timed "one$n" "$ddiff" -q diff "docker://$online/img-$n:1" "docker://$online/img-$n:2" -o "$work/one$n.ddiff"
  per_bytes=$((per_bytes + $(stat -c %s "$work/one$n.ddiff")))
  per_time=$(awk -v a="$per_time" -v b="$(t "one$n")" 'BEGIN { print a + b }')
done
timed whole "$ddiff" -q diff scratch --targets "$work/targets.txt" -o "$work/whole.ddiff"
whole_bytes=$(stat -c %s "$work/whole.ddiff")
timed load "$ddiff" -q load "$work/set.ddiff" --to "docker://$site" --no-pull

{
  echo "### Inventory and image set (issue 12), $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "20 images on 3 bases (busybox + ${BASE_MB} MiB random), each with its own ${TOP_KB} KiB layer;"
  echo "release 2: 10 images add a ${TOP_KB} KiB layer on release 1, 10 are rebuilt on their base"
  echo "patched with a ${PATCH_KB} KiB layer (each patch shared by 3 or 4 images)."
  echo "Site and online side are \`ddiff server\`s on loopback. \`$(basename "$ddiff")\` from $( [[ -n ${DDIFF_BIN:-} ]] && echo "\$DDIFF_BIN" || echo "a release build")."
  echo
  echo "| step | time | peak RSS | bytes |"
  echo "|------|------|----------|-------|"
  echo "| \`ddiff inventory docker://SITE\` ($inv_layers layers) | $(t inventory) s | $(rss_mib inventory) MiB | $inv_bytes (inventory file) |"
  echo "| \`ddiff diff --have INV --targets LIST\` (one bundle, 20 targets) | $(t setdiff) s | $(rss_mib setdiff) MiB | $(mb "$set_bytes") |"
  echo "| 20 × \`ddiff diff img-N:1 img-N:2\` (one bundle each) | $per_time s | | $(mb "$per_bytes") |"
  echo "| \`ddiff diff scratch --targets LIST\` (the whole set) | $(t whole) s | $(rss_mib whole) MiB | $(mb "$whole_bytes") |"
  echo "| \`ddiff load SET --to docker://SITE --no-pull\` | $(t load) s | $(rss_mib load) MiB | |"
  echo
  echo "Run with: \`tests/bench/inventory.sh\` (engine from \`tests/peers.sh start\`)."
} | tee "$OUT"
