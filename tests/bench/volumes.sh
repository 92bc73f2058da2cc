#!/usr/bin/env bash
# Volume sets and parity (issue 13): what cutting a bundle into volumes with Reed–Solomon
# parity costs against the plain bundle, for writing (`diff`), `verify` and `load`, and how
# fast a lost volume is rebuilt (`verify --repair`, and `load` rebuilding on the fly).
#
# The bundle (SIZE_MIB, default 2048) is generated at run time: an OCI layout with four
# random layers (python3), diffed from scratch, so every byte is carried. The set uses
# volumes of VOLUME (default 256M: 8 data volumes for 2 GiB) and PARITY (default 1).
# Goals from the issue: the set's write at most 15% slower than the plain write; verify and
# load of a set within 10% of the plain bundle; peak RSS flat.
#
# Usage: tests/bench/volumes.sh [SIZE_MIB] [RUNS]   (defaults 2048 3). No peers needed.
# DDIFF_BIN: a ddiff binary to use instead of building target/release/ddiff.
# Prints a markdown table (medians of RUNS; peak RSS the largest) and writes it to $OUT
# (default target/bench/volumes.md), with the machine's load average before and after.
set -euo pipefail
SIZE_MIB=${1:-2048}
RUNS=${2:-3}
VOLUME=${VOLUME:-256M}
PARITY=${PARITY:-1}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-$root/target/bench/volumes.md}
mkdir -p "$(dirname "$OUT")"
# shellcheck source=tests/lib/bench.sh
. "$root/tests/lib/bench.sh"
for tool in /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
ddiff=$(bench_ddiff "$root")
work=$(mktemp -d /tmp/ddiff-bench-volumes-XXXXXX)
trap 'rm -rf "$work"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# The source: an OCI layout of SIZE_MIB in four random layers (uncompressed tar media type;
# ddiff does not read layer contents on diff or load).
python3 - "$work/src" "$SIZE_MIB" <<'EOF'
import hashlib, json, os, sys
root, mib = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{root}/blobs/sha256")
def put(data=None, chunks=None):
    h = hashlib.sha256(); size = 0; tmp = f"{root}/blobs/tmp"
    with open(tmp, "wb") as f:
        for c in (chunks if chunks is not None else [data]):
            h.update(c); f.write(c); size += len(c)
    d = h.hexdigest(); os.rename(tmp, f"{root}/blobs/sha256/{d}")
    return {"digest": f"sha256:{d}", "size": size}
layers = []
per = mib // 4
for i in range(4):
    layers.append(put(chunks=(os.urandom(1 << 20) for _ in range(per))))
config = {"architecture": "amd64", "os": "linux", "config": {},
          "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}
c = put(json.dumps(config).encode())
m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **c),
     "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar", **l) for l in layers]}
md = put(json.dumps(m).encode())
idx = {"schemaVersion": 2, "manifests": [dict(
    mediaType="application/vnd.oci.image.manifest.v1+json", **md,
    annotations={"org.opencontainers.image.ref.name": "bench"})]}
open(f"{root}/index.json", "w").write(json.dumps(idx))
open(f"{root}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
EOF

# measure NAME CMD...: runs CMD, appends "NAME seconds maxrss_kib" to $work/times.
measure() {
  local name=$1; shift
  /usr/bin/time -f "$name %e %M" -a -o "$work/times" "$@" >/dev/null
}

src="oci:$work/src:bench"
mkdir -p "$work/plain" "$work/set"
for r in $(seq "$RUNS"); do
  echo "bench: run $r of $RUNS" >&2
  rm -f "$work/plain/"* "$work/set/"*
  sync
  measure "write plain" "$ddiff" --quiet diff scratch "$src" -o "$work/plain/app.ddiff"
  sync
  measure "write set" "$ddiff" --quiet diff scratch "$src" -o "$work/set/app.ddiff" \
    --volume-size "$VOLUME" --parity "$PARITY"
  measure "verify plain" "$ddiff" --quiet verify --no-checksum "$work/plain/app.ddiff"
  measure "verify set" "$ddiff" --quiet verify --no-checksum "$work/set"
  rm -rf "$work/dest"
  measure "load plain (oci:)" "$ddiff" --quiet load "$work/plain/app.ddiff" --to "oci:$work/dest"
  rm -rf "$work/dest"
  measure "load set (oci:)" "$ddiff" --quiet load "$work/set/app.ddiff.001" --to "oci:$work/dest"
  rm -rf "$work/dest"
  mv "$work/set/app.ddiff.003" "$work/lost"
  measure "load set, volume 3 missing (rebuilt on the fly)" \
    "$ddiff" --quiet load "$work/set/app.ddiff.001" --to "oci:$work/dest"
  rm -rf "$work/dest"
  measure "verify --repair (rewrites volume 3)" \
    "$ddiff" --quiet verify --no-checksum --repair "$work/set"
  cmp "$work/lost" "$work/set/app.ddiff.003"
  rm -f "$work/lost"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
plain_bytes=$(stat -c %s "$work/plain/app.ddiff")
set_bytes=$(cat "$work/set/"app.ddiff.[0-9][0-9][0-9] | wc -c)
volumes=$(find "$work/set" -maxdepth 1 -name 'app.ddiff.[0-9][0-9][0-9]' | wc -l)

python3 - "$work/times" "$RUNS" "$plain_bytes" "$set_bytes" "$volumes" "$VOLUME" "$PARITY" \
  "$load_before" "$load_after" "$(nproc)" >"$OUT" <<'EOF'
import statistics, sys
times, runs, pb, sb, nv, vol, par, lb, la, cpus = sys.argv[1:]
rows = {}
for line in open(times):
    parts = line.split()
    if len(parts) < 3 or not parts[-1].isdigit():
        continue
    name = " ".join(parts[:-2])
    rows.setdefault(name, []).append((float(parts[-2]), int(parts[-1])))
def med(n): return statistics.median(t for t, _ in rows[n])
print(f"Bundle {int(pb)/1e9:.2f} GB; set: {nv} volumes of at most {vol} ({par} parity), "
      f"{int(sb)/1e9:.2f} GB in all. Medians of {runs} runs on {cpus} CPUs; load average "
      f"{lb} before, {la} after (the machine is shared).\n")
print("| step | median s | vs plain | MB/s | peak RSS MiB |")
print("| --- | ---: | ---: | ---: | ---: |")
pairs = {"write set": "write plain", "verify set": "verify plain",
         "load set (oci:)": "load plain (oci:)",
         "load set, volume 3 missing (rebuilt on the fly)": "load plain (oci:)"}
for name, vals in rows.items():
    t = med(name)
    rss = max(m for _, m in vals) / 1024
    ratio = f"{t / med(pairs[name]):.2f}x" if name in pairs else ""
    print(f"| {name} | {t:.2f} | {ratio} | {int(pb) / 1e6 / t:.0f} | {rss:.0f} |")
EOF
cat "$OUT"
