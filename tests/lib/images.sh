#!/usr/bin/env bash
# Test-image helpers for a Docker engine started by tests/peers.sh.
#
# Source it (e2e scripts, people at a prompt) or run it:
#   source tests/lib/images.sh
#   make_busybox_base bb:base
#   make_app_image bb:base app:v1 'RUN echo "Hello DockerDiff!" > hello_ddiff.txt'
#   bash tests/lib/images.sh make_busybox_base bb:base
#
# The engine is the one DOCKER_HOST names, or else DDIFF_TEST_DOCKER_HOST (what
# `source $DDIFF_PEERS_DIR/env` exports). There is no Docker Hub here, so every base
# image is made from a rootfs holding Debian's static busybox (package busybox-static).
#
# Sourcing must not change the caller's shell options, so each function body is a
# subshell that sets `-euo pipefail` for itself. Progress goes to stderr; stdout
# carries only the result (an image ID), so `id=$(make_app_image ...)` works.

# The docker client, pointed at the test engine.
_ddiff_docker() {
    DOCKER_HOST="${DOCKER_HOST:-${DDIFF_TEST_DOCKER_HOST:-}}" DOCKER_BUILDKIT=0 docker "$@"
}

# make_busybox_base NAME:TAG
# Imports a one-layer image: static busybox in /bin plus every applet link at the path
# busybox itself names (/bin/sh, /usr/bin/env, ...), a minimal /etc/passwd and /etc/group,
# CMD ["/bin/sh"]. The tar is built with fixed owner and mtime, so the layer's diffID is
# the same on every run and every machine with the same busybox.
# Env: DDIFF_BUSYBOX (default /bin/busybox).
make_busybox_base() (
    set -euo pipefail
    if [[ $# -ne 1 ]]; then
        echo "usage: make_busybox_base NAME:TAG" >&2
        exit 2
    fi
    local ref=$1
    local busybox=${DDIFF_BUSYBOX:-/bin/busybox}
    if [[ ! -x $busybox ]]; then
        echo "make_busybox_base: $busybox not found; install Debian's busybox-static" \
            "(apt-get install -y busybox-static) or set DDIFF_BUSYBOX" >&2
        exit 1
    fi
    if ! file_out=$(LC_ALL=C "$busybox" --list-full 2>/dev/null) || [[ -z $file_out ]]; then
        echo "make_busybox_base: '$busybox --list-full' printed nothing; need a busybox with" \
            "the installer feature (Debian's busybox-static has it)" >&2
        exit 1
    fi
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/ddiff-rootfs.XXXXXX")
    # shellcheck disable=SC2064  # expand now: $work is local to this subshell
    trap "rm -rf '$work'" EXIT
    local root=$work/rootfs
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,var}
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/root"
    cp "$busybox" "$root/bin/busybox"
    chmod 0755 "$root/bin/busybox"
    local path dir up
    while IFS= read -r path; do
        case $path in
            '' | linuxrc | bin/busybox) continue ;;
        esac
        dir=${path%/*}
        # relative link back to /bin/busybox: one ../ per directory level
        up=${dir//[^\/]/}
        up=${up//\//../}
        if [[ $dir == bin ]]; then
            ln -sf busybox "$root/$path"
        else
            mkdir -p "$root/$dir"
            ln -sf "../${up}bin/busybox" "$root/$path"
        fi
    done <<<"$file_out"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    find "$root" -exec touch -h -d @0 {} +
    echo "make_busybox_base: importing $ref from $busybox" >&2
    tar -C "$root" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - . |
        _ddiff_docker import \
            --change 'CMD ["/bin/sh"]' \
            --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
            - "$ref"
)

# make_app_image BASE NEW [DOCKERFILE_LINE...]
# Builds NEW with the legacy builder from "FROM BASE" plus the given Dockerfile lines,
# one argument per line. Without lines it adds one small layer:
#   RUN echo "Hello DockerDiff!" > hello_ddiff.txt
# Env: DDIFF_BUILD_CONTEXT, a directory copied into the build context (for COPY lines).
# Prints the new image ID.
make_app_image() (
    set -euo pipefail
    if [[ $# -lt 2 ]]; then
        echo "usage: make_app_image BASE NEW [DOCKERFILE_LINE...]" >&2
        exit 2
    fi
    local base=$1 ref=$2
    shift 2
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/ddiff-build.XXXXXX")
    # shellcheck disable=SC2064  # expand now: $work is local to this subshell
    trap "rm -rf '$work'" EXIT
    if [[ -n ${DDIFF_BUILD_CONTEXT:-} ]]; then
        if [[ ! -d $DDIFF_BUILD_CONTEXT ]]; then
            echo "make_app_image: DDIFF_BUILD_CONTEXT=$DDIFF_BUILD_CONTEXT is not a directory" >&2
            exit 1
        fi
        cp -a "$DDIFF_BUILD_CONTEXT/." "$work/"
    fi
    {
        printf 'FROM %s\n' "$base"
        if [[ $# -eq 0 ]]; then
            printf '%s\n' 'RUN echo "Hello DockerDiff!" > hello_ddiff.txt'
        else
            printf '%s\n' "$@"
        fi
    } >"$work/Dockerfile.ddiff"
    echo "make_app_image: building $ref from $base" >&2
    # --network none: the engine runs with --bridge=none and there is no network to reach.
    local log=$work/build.log
    if ! _ddiff_docker build --network none --force-rm -q \
        -f "$work/Dockerfile.ddiff" -t "$ref" "$work" >"$log" 2>&1; then
        echo "make_app_image: docker build of $ref failed; Dockerfile was:" >&2
        sed 's/^/    /' "$work/Dockerfile.ddiff" >&2
        echo "  build output:" >&2
        sed 's/^/    /' "$log" >&2
        exit 1
    fi
    tail -n 1 "$log"
)

# image_layers REF: the image's layer diffIDs (sha256:...), base first, one a line.
image_layers() (
    set -euo pipefail
    if [[ $# -ne 1 ]]; then
        echo "usage: image_layers REF" >&2
        exit 2
    fi
    _ddiff_docker image inspect --format '{{range .RootFS.Layers}}{{println .}}{{end}}' "$1" |
        sed '/^$/d'
)

# Run as a script: bash tests/lib/images.sh FUNCTION ARGS...
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-} in
        make_busybox_base | make_app_image | image_layers)
            "$@"
            ;;
        *)
            echo "usage: $0 {make_busybox_base NAME:TAG | make_app_image BASE NEW [LINE...] | image_layers REF}" >&2
            exit 2
            ;;
    esac
fi
