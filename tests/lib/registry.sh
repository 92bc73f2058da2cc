#!/usr/bin/env bash
# Reference-registry helpers for e2e scripts and people (Debian's docker-registry).
#
#   source tests/lib/registry.sh
#   start_registry /tmp/reg1        # prints 127.0.0.1:PORT; storage in /tmp/reg1/data
#   docker push 127.0.0.1:PORT/app:v1
#   stop_registry /tmp/reg1
#
# Each registry gets its own dir (config, storage, log, pid) and a free loopback port.
# The Docker engine treats 127.0.0.0/8 registries as plain-HTTP ("insecure") by default;
# skopeo needs --tls-verify=false (or --src-/--dest-tls-verify=false).
# Function bodies are subshells with their own `set -euo pipefail`, so sourcing does not
# change the caller's shell options.

# start_registry DIR: start a registry with fresh storage under DIR; print HOST:PORT
# once it answers /v2/ (waits at most 30s).
start_registry() (
    set -euo pipefail
    if [[ $# -ne 1 ]]; then
        echo "usage: start_registry DIR" >&2
        exit 2
    fi
    local dir=$1 port pid waited=0
    command -v docker-registry >/dev/null ||
        {
            echo "start_registry: docker-registry not found (apt-get install -y docker-registry)" >&2
            exit 1
        }
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    if [[ -f $dir/pid ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "start_registry: a registry already runs from $dir (pid $(cat "$dir/pid"))" >&2
        exit 1
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    setsid docker-registry serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    echo "127.0.0.1:$port" >"$dir/addr"
    until curl -sf -o /dev/null "http://127.0.0.1:$port/v2/"; do
        if ! kill -0 "$pid" 2>/dev/null || ((waited >= 60)); then
            echo "start_registry: registry in $dir did not answer on 127.0.0.1:$port; log:" >&2
            tail -n 20 "$dir/registry.log" | sed 's/^/    /' >&2
            kill "$pid" 2>/dev/null || true
            exit 1
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    echo "127.0.0.1:$port"
)

# stop_registry DIR: stop the registry started from DIR (storage is kept).
stop_registry() (
    set -euo pipefail
    if [[ $# -ne 1 ]]; then
        echo "usage: stop_registry DIR" >&2
        exit 2
    fi
    local pid
    [[ -f $1/pid ]] || exit 0
    pid=$(cat "$1/pid")
    if kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == docker-registry ]]; then
        kill "$pid"
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1/pid"
)
