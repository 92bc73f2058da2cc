#!/usr/bin/env bash
# goflate against the real thing: `docker push` compresses a layer with Go's compress/gzip
# (Docker 20.10, built with Go 1.19 here). Gunzip the pushed blob, recompress the tar with
# goflate at the levels `candidate_levels` proposes, and require one to give the blob's
# exact sha256. Prints which level matched.
#
# Needs the peers' env (tests/peers.sh start; . "$DDIFF_PEERS_DIR/env"): DOCKER_HOST, a
# `docker-registry`. Run by tests/run-all.sh.
set -euo pipefail

ROOT=${DDIFF_REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT"
# shellcheck source=tests/lib/images.sh
. tests/lib/images.sh
# shellcheck source=tests/lib/registry.sh
. tests/lib/registry.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/goflate-e2e.XXXXXX")
ref=goflate-e2e:$$
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    stop_registry "$work/reg" >/dev/null 2>&1 || true
    docker image rm -f "$ref" "${addr:-none}/$ref" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build -q -p ddiff-goflate --example gogzip
gogzip=${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/gogzip

# A ~5 MB layer of varied files: text docs, shared libraries, random bytes, zeros.
ctx=$work/ctx
mkdir -p "$ctx/doc" "$ctx/lib"
# (lists go through files: `head` closing a pipe would fail the script under pipefail)
find /usr/share/doc -type f -size -200k | sort >"$work/docs"
head -n 400 "$work/docs" | while read -r f; do
    cp "$f" "$ctx/doc/$(echo "$f" | tr / _)"
done
find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' -size -400k | sort >"$work/libs"
head -n 8 "$work/libs" | while read -r f; do cp "$f" "$ctx/lib/"; done
head -c 1000000 /dev/urandom >"$ctx/random.bin"
head -c 300000 /dev/zero >"$ctx/zeros.bin"
du -sh "$ctx" | sed 's/^/context: /'

DDIFF_BUILD_CONTEXT=$ctx make_app_image "${DDIFF_TEST_BASE_IMAGE:-bb:base}" "$ref" 'COPY . /data/' >/dev/null
addr=$(start_registry "$work/reg")
docker tag "$ref" "$addr/$ref"
docker push -q "$addr/$ref" >/dev/null

repo=${ref%%:*}
tag=${ref#*:}
manifest=$(curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$addr/v2/$repo/manifests/$tag")
layer=$(jq -r '.layers[-1].digest' <<<"$manifest")
curl -sf -o "$work/blob" "http://$addr/v2/$repo/blobs/$layer"
echo "pushed layer: $layer ($(stat -c %s "$work/blob") bytes)"
[[ $(sha256sum <"$work/blob" | cut -d' ' -f1) == "${layer#sha256:}" ]] || {
    echo "FAIL: the fetched blob does not have its digest" >&2
    exit 1
}
gunzip -c <"$work/blob" >"$work/layer.tar"
echo "layer tar: $(stat -c %s "$work/layer.tar") bytes"

read -r -a levels < <("$gogzip" --candidates <"$work/blob")
echo "candidate levels: ${levels[*]:-none}"
for level in "${levels[@]}"; do
    got=$("$gogzip" "$level" <"$work/layer.tar" | sha256sum | cut -d' ' -f1)
    if [[ sha256:$got == "$layer" ]]; then
        echo "OK: goflate level $level rebuilds the pushed blob exactly ($layer)"
        exit 0
    fi
    echo "level $level: sha256:$got differs"
done
echo "FAIL: no candidate level rebuilt $layer" >&2
exit 1
