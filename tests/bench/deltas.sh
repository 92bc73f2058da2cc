#!/usr/bin/env bash
# Benchmark of deltas inside layers (issue 11), side by side in one run.
#
# Four pairs of real registry images, generated at run time (nothing large is committed):
#   a  rebuilt:   /usr/lib/python3.11 with its .pyc compiled, then copied again with new
#                 mtimes and the .pyc regenerated (new layer digest, same files mostly)
#   b  upgrade:   real Debian packages at two versions from the configured suites
#                 (apt-cache madison; apt-get download; dpkg -x), old and new trees
#   c  big:       BIG_MB of real files from /usr, then a handful of them changed
#   d  unrelated: /usr/share files as the old image, /usr/lib files as the new one
# Each tree is `docker import`ed (the engine of tests/peers.sh) and `docker push`ed to a
# Debian docker-registry (tests/lib/registry.sh), so layers are Go-gzipped as real registry
# layers are; a "site" registry holds the old image (skopeo copy).
#
# Measured per pair: bytes of the layer-level bundle (`ddiff diff --no-deltas`), the delta
# bundle (default level and --delta-level 19), `zstd --long=31 --patch-from` at -19 and -3 on
# the uncompressed tars, a zstd patch of the new gzip blob against the old one, and
# `docker save | gzip` of the new image; time and peak RSS (/usr/bin/time) of the three
# diffs and of `ddiff load` of the delta bundle (with the rebuild) and of the layer-level
# bundle into a fresh site registry; the loaded manifest digest is checked against the
# source's. RUNS repeats, medians; `uptime` before and after.
#
# Usage: [RUNS=3] [BIG_MB=1024] [PAIRS="a b c d"] [DDIFF_BIN=path] tests/bench/deltas.sh
#   PKGS="..."  Debian packages for pair b (default below)
#   DDIFF_PEERS_DIR  the engine's state dir (default /tmp/ddiff-bench-peers; started and
#                    stopped here when it is not already running)
# Writes the markdown tables to $OUT (default target/bench/deltas.md) and prints them.
# Needs: docker.io, docker-registry, skopeo, zstd, time, curl, python3, apt (pair b).
set -euo pipefail
RUNS=${RUNS:-3}
BIG_MB=${BIG_MB:-1024}
PAIRS=${PAIRS:-a b c d}
PKGS=${PKGS:-libc6 libc-bin libssl3 openssl libpython3.11-minimal libpython3.11-stdlib python3.11 libcurl4 curl libperl5.36 perl-modules-5.36 systemd}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
OUT=${OUT:-$root/target/bench/deltas.md}
mkdir -p "$(dirname "$OUT")"
work=$(mktemp -d /tmp/ddiff-bench-deltas-XXXXXX)
export DDIFF_PEERS_DIR=${DDIFF_PEERS_DIR:-/tmp/ddiff-bench-peers}
# shellcheck source=tests/lib/registry.sh
. "$root/tests/lib/registry.sh"

log() { echo "bench: $*" >&2; }
die() {
    echo "bench: error: $*" >&2
    exit 1
}

for tool in docker docker-registry skopeo zstd /usr/bin/time curl python3 gzip; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
# DDIFF_BIN=path runs another build; else the release build (built once, under the lock).
if [[ -z ${DDIFF_BIN:-} ]]; then
    flock /tmp/ddiff-build.lock cargo build --release --bin ddiff -q
fi
ddiff=${DDIFF_BIN:-$root/target/release/ddiff}
[[ -x $ddiff ]] || die "no ddiff binary at $ddiff"

started_engine=0
registries=()
cleanup() {
    local r
    for r in "${registries[@]}"; do stop_registry "$r" || true; done
    if ((started_engine)); then bash "$root/tests/peers.sh" stop --purge >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! bash "$root/tests/peers.sh" status >/dev/null 2>&1; then
    log "starting a Docker engine in $DDIFF_PEERS_DIR"
    bash "$root/tests/peers.sh" start >&2
    started_engine=1
fi
# shellcheck source=/dev/null
. "$DDIFF_PEERS_DIR/env"

uptime_before=$(uptime)
log "load before: $uptime_before"
src=$(start_registry "$work/src")
registries+=("$work/src")
results=$work/results
: >"$results"
# record PAIR KEY VALUE
record() { echo "$1 $2 $3" >>"$results"; }

# copy_files SRC MB DEST: copy regular files (over 8 KiB, sorted by path) from SRC until MB
copy_files() {
    mkdir -p "$3"
    find "$1" -xdev -type f -size +8k -printf '%s %P\n' 2>/dev/null | sort -k2 |
        awk -v max=$(($2 * 1048576)) 't + $1 <= max { t += $1; print $2 }' |
        tar -C "$1" -cf - --no-recursion -T - | tar -C "$3" -xf -
}

# python_tree DEST: /usr/lib/python3.11 copied with fresh mtimes and .pyc compiled for it
python_tree() {
    mkdir -p "$1/usr/lib"
    cp -r /usr/lib/python3.11 "$1/usr/lib/"
    find "$1" -name __pycache__ -prune -exec rm -rf {} +
    python3 -m compileall -q -j 0 "$1/usr/lib/python3.11" >/dev/null 2>&1 || true
}

make_pair_a() {
    python_tree "$1/old"
    sleep 1.1 # new mtimes, so the new .pyc headers differ
    python_tree "$1/new"
    echo "/usr/lib/python3.11 with .pyc, copied again with new mtimes and .pyc regenerated" >"$1/what"
}

make_pair_b() {
    local p v d vers old new used=()
    mkdir -p "$1/debs/old" "$1/debs/new" "$1/old" "$1/new"
    for p in $PKGS; do
        mapfile -t vers < <(apt-cache madison "$p" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | sort -u)
        if ((${#vers[@]} < 2)); then
            log "pair b: $p has fewer than two versions in the configured suites; skipped"
            continue
        fi
        # the newest and the one before it
        new=${vers[0]}
        for v in "${vers[@]}"; do
            if dpkg --compare-versions "$v" gt "$new"; then new=$v; fi
        done
        old=""
        for v in "${vers[@]}"; do
            if [[ $v != "$new" ]] && { [[ -z $old ]] || dpkg --compare-versions "$v" gt "$old"; }; then old=$v; fi
        done
        (cd "$1/debs/old" && apt-get download -q "$p=$old" >/dev/null 2>&1) || {
            log "pair b: cannot download $p=$old; skipped"
            continue
        }
        (cd "$1/debs/new" && apt-get download -q "$p=$new" >/dev/null 2>&1) || {
            log "pair b: cannot download $p=$new; skipped"
            continue
        }
        used+=("$p $old -> $new")
    done
    ((${#used[@]})) || die "pair b: no package with two versions could be downloaded"
    for d in "$1"/debs/old/*.deb; do dpkg -x "$d" "$1/old"; done
    for d in "$1"/debs/new/*.deb; do dpkg -x "$d" "$1/new"; done
    {
        printf 'Debian packages, old -> new: '
        printf '%s; ' "${used[@]}"
        echo
    } >"$1/what"
}

make_pair_c() {
    copy_files /usr "$BIG_MB" "$1/old/usr"
    cp -a "$1/old" "$1/new"
    # a handful of changed files: three patched in place, one grown, one removed, one added
    local all i
    mapfile -t all < <(cd "$1/new" && find . -type f -size +64k | sort)
    ((${#all[@]} >= 5)) || die "pair c: too few files over 64 KiB under /usr for BIG_MB=$BIG_MB"
    # five spread over the layer
    local files=()
    for i in 0 1 2 3 4; do files+=("${all[$((i * ${#all[@]} / 5 + ${#all[@]} / 10))]}"); done
    for i in 0 1 2; do
        head -c 4096 /dev/urandom | dd of="$1/new/${files[$i]}" bs=4096 seek=7 conv=notrunc status=none
    done
    head -c 100000 /dev/urandom >>"$1/new/${files[3]}"
    rm "$1/new/${files[4]}"
    head -c 1048576 /dev/urandom >"$1/new/usr/added.bin"
    echo "${BIG_MB} MB of files from /usr; 3 patched (4 KiB each), 1 grown by 100 kB, 1 removed, 1 of 1 MiB added" >"$1/what"
}

make_pair_d() {
    copy_files /usr/share 48 "$1/old/usr/share"
    copy_files /usr/lib/x86_64-linux-gnu 48 "$1/new/usr/lib"
    echo "up to 48 MB of /usr/share files as the old image, up to 48 MB of /usr/lib/x86_64-linux-gnu files as the new" >"$1/what"
}

# layer_blob IMAGE OUT: the (only) layer blob of IMAGE in the source registry
layer_blob() {
    local digest
    digest=$(skopeo inspect --tls-verify=false --raw "docker://$src/$1" |
        python3 -c 'import json, sys; m = json.load(sys.stdin); assert len(m["layers"]) == 1, "one layer"; print(m["layers"][0]["digest"])')
    curl -sf -o "$2" "http://$src/v2/${1%%:*}/blobs/$digest"
}

manifest_digest() { skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$1"; }

# measure PAIR KEY CMD...: time and peak RSS of CMD into the results
measure() {
    local pair=$1 key=$2
    shift 2
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || {
        cat "$work/err" >&2
        die "$pair: $key failed: $*"
    }
    read -r secs kib <"$work/t"
    record "$pair" "${key}_s" "$secs"
    record "$pair" "${key}_rss" "$kib"
}

size() { stat -c %s "$1"; }
# patch_bytes BUNDLE: the bytes of the patches it carries (0: every layer whole)
patch_bytes() {
    tar -xOf "$1" ddiff.json | python3 -c 'import json, sys; print(sum(b["patch"]["size"] for b in json.load(sys.stdin)["blobs"] if b.get("patch")))'
}

# --- generate and push the pairs -------------------------------------------------------
for pair in $PAIRS; do
    d=$work/$pair
    mkdir -p "$d"
    log "pair $pair: generating"
    "make_pair_$pair" "$d"
    for v in old new; do
        tar -C "$d/$v" -cf - . | docker import - "bench-$pair:$v" >/dev/null
        docker tag "bench-$pair:$v" "$src/bench-$pair:$v"
        docker push -q "$src/bench-$pair:$v" >/dev/null
        layer_blob "bench-$pair:$v" "$d/$v.gz"
        gzip -dc "$d/$v.gz" >"$d/$v.tar"
    done
    rm -rf "$d/old" "$d/new" "$d/debs"
    record "$pair" old_tar "$(size "$d/old.tar")"
    record "$pair" new_tar "$(size "$d/new.tar")"
    record "$pair" new_gz "$(size "$d/new.gz")"
    record "$pair" src_digest "$(manifest_digest "$src/bench-$pair:new")"
    # the site's storage with the old image, copied fresh for every load
    site=$(start_registry "$d/site-tmpl")
    registries+=("$d/site-tmpl")
    skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
        "docker://$src/bench-$pair:old" "docker://$site/bench-$pair:old"
    stop_registry "$d/site-tmpl"

    log "pair $pair: zstd baselines"
    measure "$pair" zstd19 zstd -q -f -19 --long=31 --patch-from="$d/old.tar" "$d/new.tar" -o "$d/p19.zst"
    measure "$pair" zstd3 zstd -q -f -3 --long=31 --patch-from="$d/old.tar" "$d/new.tar" -o "$d/p3.zst"
    record "$pair" zstd19_bytes "$(size "$d/p19.zst")"
    record "$pair" zstd3_bytes "$(size "$d/p3.zst")"
    # the patch a tool that patches stored blobs would carry (-19 up to 128 MiB, else -3)
    blevel=19
    (($(size "$d/new.gz") > 134217728)) && blevel=3
    zstd -q -f "-$blevel" --long=31 --patch-from="$d/old.gz" "$d/new.gz" -o "$d/pgz.zst"
    record "$pair" gzpatch_bytes "$(size "$d/pgz.zst")"
    record "$pair" gzpatch_level "$blevel"
    record "$pair" save_gz "$(docker save "bench-$pair:new" | gzip -c | wc -c)"
    rm -f "$d/p19.zst" "$d/p3.zst" "$d/pgz.zst" "$d/new.gz" "$d/old.gz"
done

# load_into PAIR KEY BUNDLE: load BUNDLE into a fresh copy of the site; check the digest
load_into() {
    local pair=$1 key=$2 bundle=$3 s=$work/$1/site-run site got
    rm -rf "$s"
    mkdir -p "$s"
    cp -a "$work/$pair/site-tmpl/data" "$s/data"
    site=$(start_registry "$s")
    registries+=("$s")
    measure "$pair" "$key" "$ddiff" --quiet load --no-pull "$bundle" --to "docker://$site"
    got=$(manifest_digest "$site/bench-$pair:new")
    if [[ $got == "$(awk -v p="$pair" '$1 == p && $2 == "src_digest" { print $3 }' "$results")" ]]; then
        record "$pair" "${key}_digest_ok" 1
    else
        record "$pair" "${key}_digest_ok" 0
        log "pair $pair: $key loaded manifest $got, not the source's"
    fi
    stop_registry "$s"
    rm -rf "$s"
}

# --- the runs, interleaved ---------------------------------------------------------------
for run in $(seq "$RUNS"); do
    for pair in $PAIRS; do
        d=$work/$pair
        log "run $run/$RUNS, pair $pair"
        base=docker://$src/bench-$pair:old
        target=docker://$src/bench-$pair:new
        measure "$pair" diff_full "$ddiff" --quiet diff --no-deltas "$base" "$target" -o "$d/full.ddiff"
        measure "$pair" diff_delta "$ddiff" --quiet diff "$base" "$target" -o "$d/delta.ddiff"
        measure "$pair" diff_delta19 "$ddiff" --quiet diff --delta-level 19 "$base" "$target" -o "$d/delta19.ddiff"
        record "$pair" full_bytes "$(size "$d/full.ddiff")"
        record "$pair" delta_bytes "$(size "$d/delta.ddiff")"
        record "$pair" delta19_bytes "$(size "$d/delta19.ddiff")"
        record "$pair" patch_bytes "$(patch_bytes "$d/delta.ddiff")"
        record "$pair" patch19_bytes "$(patch_bytes "$d/delta19.ddiff")"
        load_into "$pair" load_full "$d/full.ddiff"
        load_into "$pair" load_delta "$d/delta.ddiff"
    done
done
uptime_after=$(uptime)
log "load after: $uptime_after"

for pair in $PAIRS; do
    printf '%s %s\n' "$pair" "$(cat "$work/$pair/what")"
done >"$work/whats"

cp "$results" "$OUT.results" # the raw numbers, one per line, kept for a re-read
python3 - "$results" "$work/whats" "$RUNS" "$BIG_MB" "$uptime_before" "$uptime_after" "$("$ddiff" --version)" >"$OUT" <<'PY'
import statistics, sys
res, whats, runs, big_mb, up0, up1, version = sys.argv[1:8]
vals = {}
for line in open(res):
    p, k, v = line.split(maxsplit=2)
    vals.setdefault(p, {}).setdefault(k, []).append(v.strip())
what = dict(line.rstrip("\n").split(" ", 1) for line in open(whats))
names = {"a": "(a) rebuilt", "b": "(b) upgrade", "c": "(c) big", "d": "(d) unrelated"}
def med(p, k): return statistics.median(float(x) for x in vals[p][k])
def rng(p, k):
    xs = [float(x) for x in vals[p][k]]
    return f"{min(xs):.2f}–{max(xs):.2f}" if len(xs) > 1 else ""
MB = 1e6
MiB = 1048576
def mb(b): return f"{b / MB:.3f}"
pairs = [p for p in "abcd" if p in vals]
print(f"{version}; RUNS={runs}, BIG_MB={big_mb}; 2-core VM shared with other builds.\n")
print(f"- load before: `{up0.strip()}`")
print(f"- load after: `{up1.strip()}`\n")
for p in pairs:
    print(f"- {names[p]}: {what[p]}")
print()
print("Bytes (MB; the bundle and its patches alone; ratios to the layer-level bundle and of the patch to zstd -19 --long --patch-from):\n")
print("| pair | new layer tar | new layer gz | layer-level bundle | delta bundle (default) | its patch | delta bundle (-19) | its patch | zstd -19 patch-from | zstd -3 patch-from | zstd patch of gz blobs | docker save \\| gzip | delta / layer-level | patch / zstd -19 | patch -19 / zstd -19 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for p in pairs:
    full, delta, d19 = med(p, "full_bytes"), med(p, "delta_bytes"), med(p, "delta19_bytes")
    pb, pb19 = med(p, "patch_bytes"), med(p, "patch19_bytes")
    # a layer that travels whole: compare the bundle with the patch
    pc, pc19 = (pb or delta), (pb19 or d19)
    z19, z3, gzp = med(p, "zstd19_bytes"), med(p, "zstd3_bytes"), med(p, "gzpatch_bytes")
    lvl = vals[p]["gzpatch_level"][0]
    print(f"| {names[p]} | {mb(med(p, 'new_tar'))} | {mb(med(p, 'new_gz'))} | {mb(full)} | {mb(delta)} | {mb(pb) if pb else 'whole'} | {mb(d19)} | {mb(pb19) if pb19 else 'whole'} | {mb(z19)} | {mb(z3)} | {mb(gzp)} (-{lvl}) | {mb(med(p, 'save_gz'))} | {100 * delta / full:.1f}% | {pc / z19:.2f}x | {pc19 / z19:.2f}x |")
print()
print("Time (median s, range) and peak RSS (median MiB); MB/s over the new layer's uncompressed tar:\n")
print("| pair | diff --no-deltas | diff (default) | diff MB/s | diff --delta-level 19 | load layer-level | load delta (rebuild) | load delta MB/s | zstd -19 / -3 patch-from s | RSS diff / diff -19 / load delta | RSS budget (ref + target tar + 64 MiB) | digest (full, delta) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for p in pairs:
    tar = med(p, "new_tar")
    budget = (med(p, "old_tar") + tar) / MiB + 64
    def t(k): return f"{med(p, k + '_s'):.2f} ({rng(p, k + '_s')})" if len(vals[p][k + '_s']) > 1 else f"{med(p, k + '_s'):.2f}"
    def r(k): return f"{med(p, k + '_rss') / 1024:.0f}"
    ok = lambda k: "ok" if all(x == "1" for x in vals[p][k + "_digest_ok"]) else "DIFFERS"
    print(f"| {names[p]} | {t('diff_full')} | {t('diff_delta')} | {tar / MB / med(p, 'diff_delta_s'):.0f} | {t('diff_delta19')} | {t('load_full')} | {t('load_delta')} | {tar / MB / med(p, 'load_delta_s'):.0f} | {med(p, 'zstd19_s'):.1f} / {med(p, 'zstd3_s'):.1f} | {r('diff_delta')} / {r('diff_delta19')} / {r('load_delta')} | {budget:.0f} | {ok('load_full')}, {ok('load_delta')} |")
PY
cat "$OUT"
