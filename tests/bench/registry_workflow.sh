#!/usr/bin/env bash
# Benchmark of the registry workflow (issue 4), side by side in one run:
#   ddiff diff + ddiff load      (carry only what the app adds)
#   skopeo copy to oci-archive + skopeo copy back   (how users move the whole app today)
#   cp + sha256sum of the carried bytes              (the limit)
# Images: a generated ~1 GiB base and an app adding ~100 MB (real gzip layers, real configs),
# made by `ddiff demo --keep`, served by `ddiff server` from the demo's storage.
# Usage: [DDIFF_BIN=path] tests/bench/registry_workflow.sh [BASE_MB] [APP_MB]    (defaults 1024 100)
# Prints a markdown table; writes it to $OUT (default target/bench/registry_workflow.md).
set -euo pipefail
BASE_MB=${1:-1024}
APP_MB=${2:-100}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=$(mktemp -d /tmp/ddiff-bench-XXXXXX)
OUT=${OUT:-$root/target/bench/registry_workflow.md}
mkdir -p "$(dirname "$OUT")"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for tool in skopeo /usr/bin/time sha256sum; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
# DDIFF_BIN=path runs another build (e.g. the one before a change, for a side-by-side).
if [ -z "${DDIFF_BIN:-}" ]; then cargo build --release --bin ddiff -q; fi
ddiff=${DDIFF_BIN:-$root/target/release/ddiff}

echo "bench: generating a ${BASE_MB} MB base and a ${APP_MB} MB app" >&2
"$ddiff" demo --quiet --base-mb "$BASE_MB" --app-mb "$APP_MB" --keep "$work/demo" >/dev/null

# start_server ROOT: sets $host to its host:port (no command substitution, so that the
# server's pid lands in this shell's $pids and the EXIT trap stops it)
start_server() {
  "$ddiff" server --addr 127.0.0.1:0 --root "$1" >"$1.out" 2>"$1.log" &
  pids+=($!)
  for _ in $(seq 100); do
    if grep -q listening "$1.out" 2>/dev/null; then
      host=$(sed -n 's#.*listening on http://\([^ ]*\).*#\1#p' "$1.out"); return
    fi
    sleep 0.05
  done
  echo "bench: server for $1 did not start" >&2; exit 1
}
start_server "$work/demo/online"; online=$host
# fresh_offline NAME: sets $host to a registry holding only the base
fresh_offline() {
  start_server "$work/$1"
  skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false \
    "docker://$online/demo/base:1" "docker://$host/demo/base:1"
}

# measure NAME CMD... : appends "NAME seconds peak_kib" to $work/times
measure() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  echo "$name $(cat "$work/t")" >>"$work/times"
}
sync

# ddiff
fresh_offline off1; off1=$host
measure ddiff_diff "$ddiff" --quiet diff "docker://$online/demo/base:1" "docker://$online/demo/app:2" -o "$work/app.ddiff"
measure ddiff_load "$ddiff" --quiet load --no-pull "$work/app.ddiff" --to "docker://$off1"
bundle=$(stat -c %s "$work/app.ddiff")
carried=$("$ddiff" --json inspect "$work/app.ddiff" 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("carried_bytes") or d.get("totals",{}).get("carried_bytes") or 0)' 2>/dev/null || echo 0)
if [ "$carried" = 0 ]; then carried=$(tar -xOf "$work/app.ddiff" ddiff.json | python3 -c 'import json,sys; print(sum(b["size"] for b in json.load(sys.stdin)["blobs"]))'); fi

# skopeo, the whole app through an archive
fresh_offline off2; off2=$host
measure skopeo_export skopeo copy --quiet --src-tls-verify=false "docker://$online/demo/app:2" "oci-archive:$work/app.oci.tar"
measure skopeo_import skopeo copy --quiet --dest-tls-verify=false "oci-archive:$work/app.oci.tar" "docker://$off2/demo/app:2"
full=$(stat -c %s "$work/app.oci.tar")

# the limit: copy and hash only the carried bytes
measure limit_cp cp "$work/app.ddiff" "$work/copy.ddiff"
measure limit_sha256sum sha256sum "$work/copy.ddiff"

python3 - "$work/times" "$bundle" "$carried" "$full" "$BASE_MB" "$APP_MB" >"$OUT" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    n, s, k = line.split()
    rows[n] = (float(s), int(k))
bundle, carried, full, base_mb, app_mb = map(int, sys.argv[2:7])
limit = rows["limit_cp"][0] + rows["limit_sha256sum"][0]
def r(a, b): return f"{a / b:.2f}x" if b else "n/a"
print(f"Base {base_mb} MB of content, app adds {app_mb} MB (generated, gzip layers). One run, same machine.\n")
print("| step | time (s) | peak RSS (MiB) | vs limit (cp+sha256sum of carried bytes) |")
print("|---|---:|---:|---:|")
for n in ["ddiff_diff", "ddiff_load", "skopeo_export", "skopeo_import", "limit_cp", "limit_sha256sum"]:
    s, k = rows[n]
    print(f"| {n.replace('_', ' ')} | {s:.2f} | {k/1024:.1f} | {r(s, limit)} |")
d = rows["ddiff_diff"][0] + rows["ddiff_load"][0]
sk = rows["skopeo_export"][0] + rows["skopeo_import"][0]
print()
print(f"- bytes to carry: ddiff bundle {bundle:,} B vs whole app as oci-archive {full:,} B: **{full/bundle:.1f}x fewer** with ddiff")
print(f"- bundle overhead over the carried blobs ({carried:,} B): {100*(bundle-carried)/max(carried,1):.2f}% (goal: at most 1%)")
print(f"- diff + load {d:.2f}s vs skopeo export + import {sk:.2f}s: **{r(sk, d)}** faster")
print(f"- diff vs limit: {r(rows['ddiff_diff'][0], limit)}, load vs limit: {r(rows['ddiff_load'][0], limit)} (goal: within 1.5x)")
print(f"- peak RSS: diff {rows['ddiff_diff'][1]/1024:.1f} MiB, load {rows['ddiff_load'][1]/1024:.1f} MiB (goal: under 64 MiB)")
PY
cat "$OUT"
