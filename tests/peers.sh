#!/usr/bin/env bash
# Start and stop the real peers that ddiff's integration tests talk to.
#
#   tests/peers.sh start          start a private Docker engine, write $DDIFF_PEERS_DIR/env
#   tests/peers.sh stop [--purge] stop that engine (and its containerd), unmount, keep data
#                                 (--purge: also delete the state dir)
#   tests/peers.sh env            print the env file (eval "$(tests/peers.sh env)")
#   tests/peers.sh status         say whether the engine answers
#
# Env:
#   DDIFF_PEERS_DIR      state dir (default /tmp/ddiff-peers). One engine per dir; engines
#                        in different dirs run side by side.
#   DDIFF_PEERS_TIMEOUT  seconds to wait for the engine to answer (default 90)
#   DDIFF_BUSYBOX        static busybox for the base image (default /bin/busybox)
#
# The engine is Debian's docker.io, run the only way this sandbox allows: vfs storage, no
# iptables, no bridge. The reference registry (docker-registry), skopeo and umoci are not
# started here: tests start their own instances on free ports with fresh storage; this
# script only checks that they are installed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${DDIFF_PEERS_DIR:-/tmp/ddiff-peers}
TIMEOUT=${DDIFF_PEERS_TIMEOUT:-90}
BASE_IMAGE=bb:base

log() { echo "peers: $*" >&2; }
die() {
    echo "peers: error: $*" >&2
    exit 1
}

# Absolute, without a trailing slash: the path is matched against /proc and mountinfo.
case $DIR in
    /*) ;;
    *) DIR=$PWD/$DIR ;;
esac
DIR=${DIR%/}
[[ -n $DIR && $DIR != / ]] || die "DDIFF_PEERS_DIR must not be /"

SOCK=$DIR/docker.sock
PIDFILE=$DIR/run/dockerd.pid
LOGFILE=$DIR/dockerd.log
ENVFILE=$DIR/env
DATA=$DIR/data
EXEC=$DIR/exec

# A unix socket path must fit in sun_path (108 bytes); containerd's socket lives deeper.
if ((${#EXEC} + 40 > 107)); then
    die "DDIFF_PEERS_DIR=$DIR is too long for unix socket paths; use a shorter dir"
fi

docker_here() { DOCKER_HOST=unix://$SOCK docker "$@"; }

engine_answers() {
    [[ -S $SOCK ]] && timeout 10 env DOCKER_HOST="unix://$SOCK" docker version \
        --format '{{.Server.Version}}' >/dev/null 2>&1
}

# kill -0 also succeeds on a zombie, which a non-reaping PID 1 may keep around.
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}

dockerd_pid() {
    local pid
    [[ -f $PIDFILE ]] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1
    echo "$pid"
}

# Engine processes that belong to this state dir: dockerd, its containerd, shims, runc,
# docker-proxy, matched by program name AND by naming $DIR on their command line, so a
# second engine in another dir (or the shell that called us) is never touched.
our_engine_pids() {
    local p comm
    for p in /proc/[0-9]*; do
        comm=$(cat "$p/comm" 2>/dev/null) || continue
        case $comm in
            dockerd | containerd | containerd-shim* | runc | docker-proxy) ;;
            *) continue ;;
        esac
        if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qF -- "$DIR/"; then
            echo "${p#/proc/}"
        fi
    done
}

unmount_all() {
    local mp left
    # deepest first; mountinfo field 5 is the mount point (spaces escaped as \040)
    while IFS= read -r mp; do
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null ||
            log "warning: could not unmount $mp"
    done < <(awk -v d="$DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    left=$(awk -v d="$DIR/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)
    ((left == 0)) || log "warning: $left mount(s) still under $DIR"
}

check_tools() {
    local missing=() t
    for t in dockerd docker containerd runc docker-registry skopeo umoci; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [[ -x ${DDIFF_BUSYBOX:-/bin/busybox} ]] || missing+=("${DDIFF_BUSYBOX:-/bin/busybox}")
    if ((${#missing[@]} > 0)); then
        die "missing: ${missing[*]}
  install them with:
    apt-get update && apt-get install -y docker.io docker-registry skopeo umoci busybox-static"
    fi
}

write_env() {
    local tmp=$ENVFILE.tmp
    cat >"$tmp" <<EOF
# written by tests/peers.sh start; source it: . $ENVFILE
export DDIFF_PEERS_DIR=$DIR
export DDIFF_TEST_DOCKER_HOST=unix://$SOCK
export DOCKER_HOST=unix://$SOCK
export DOCKER_BUILDKIT=0
export DDIFF_TEST_BASE_IMAGE=$BASE_IMAGE
export DDIFF_REQUIRE_PEERS=1
EOF
    mv "$tmp" "$ENVFILE"
}

cmd_start() {
    check_tools
    mkdir -p "$DIR" "$DIR/run" "$DATA" "$EXEC"
    if dockerd_pid >/dev/null && engine_answers; then
        log "engine already running in $DIR (pid $(dockerd_pid))"
    else
        if pid=$(dockerd_pid); then
            log "dockerd pid $pid in $DIR does not answer; restarting it"
        fi
        # Anything left from an earlier engine in this dir (crashed, killed, machine reused).
        stop_engine
        rm -f "$SOCK" "$PIDFILE"
        # Our own daemon.json so a machine-wide /etc/docker/daemon.json cannot interfere.
        echo '{}' >"$DIR/daemon.json"
        # A fresh log per start, so the tail shown on failure is this start's.
        [[ -f $LOGFILE ]] && mv -f "$LOGFILE" "$LOGFILE.1"
        log "starting dockerd in $DIR (log: $LOGFILE)"
        # setsid: the engine must outlive this script and not get the caller's signals.
        setsid dockerd \
            --config-file "$DIR/daemon.json" \
            --storage-driver=vfs \
            --iptables=false --ip6tables=false --ip-masq=false \
            --bridge=none --ip-forward=false \
            --data-root "$DATA" \
            --exec-root "$EXEC" \
            --pidfile "$PIDFILE" \
            --host "unix://$SOCK" \
            </dev/null >>"$LOGFILE" 2>&1 &
        local launcher=$! waited=0
        until engine_answers; do
            if ! alive "$launcher" && ! dockerd_pid >/dev/null; then
                echo "peers: error: dockerd exited before it answered; last lines of $LOGFILE:" >&2
                tail -n 30 "$LOGFILE" | sed 's/^/    /' >&2
                exit 1
            fi
            if ((waited >= TIMEOUT)); then
                echo "peers: error: dockerd did not answer on $SOCK within ${TIMEOUT}s;" \
                    "last lines of $LOGFILE:" >&2
                tail -n 30 "$LOGFILE" | sed 's/^/    /' >&2
                stop_engine
                exit 1
            fi
            sleep 1
            waited=$((waited + 1))
        done
        log "engine answers (server $(docker_here version --format '{{.Server.Version}}'), ${waited}s)"
    fi
    if docker_here image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE present"
    else
        # shellcheck source=tests/lib/images.sh
        . "$HERE/lib/images.sh"
        DOCKER_HOST=unix://$SOCK make_busybox_base "$BASE_IMAGE" >/dev/null ||
            die "could not import the base image $BASE_IMAGE"
        log "base image $BASE_IMAGE imported"
    fi
    write_env
    log "ready; to use it:  . $ENVFILE"
}

# Stop this dir's engine: SIGTERM dockerd (it stops containers and its containerd), wait,
# then SIGKILL whatever of ours is left, then unmount. Quiet when nothing runs.
stop_engine() {
    local pid waited=0 pids
    if pid=$(dockerd_pid); then
        # Containers left by tests: kill them now, or dockerd waits 10s on each one that
        # ignores SIGTERM (PID 1 of a busybox `sleep` does).
        if engine_answers; then
            local running
            running=$(timeout 10 env DOCKER_HOST="unix://$SOCK" docker ps -q 2>/dev/null || true)
            if [[ -n $running ]]; then
                # shellcheck disable=SC2086  # one id per word
                timeout 30 env DOCKER_HOST="unix://$SOCK" docker kill $running >/dev/null 2>&1 ||
                    true
            fi
        fi
        log "stopping dockerd pid $pid"
        kill -TERM "$pid" 2>/dev/null || true
        while alive "$pid" && ((waited < 30)); do
            sleep 1
            waited=$((waited + 1))
        done
        if alive "$pid"; then
            log "dockerd pid $pid ignored SIGTERM for 30s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    # containerd and shims that dockerd did not take down with it
    pids=$(our_engine_pids)
    if [[ -n $pids ]]; then
        # shellcheck disable=SC2086  # one pid per word
        kill -TERM $pids 2>/dev/null || true
        waited=0
        while [[ -n $(our_engine_pids) ]] && ((waited < 10)); do
            sleep 1
            waited=$((waited + 1))
        done
        pids=$(our_engine_pids)
        if [[ -n $pids ]]; then
            log "killing leftover engine processes: ${pids//$'\n'/ }"
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 1
        fi
    fi
    unmount_all
    rm -f "$PIDFILE" "$SOCK"
}

cmd_stop() {
    local purge=0
    case ${1:-} in
        --purge) purge=1 ;;
        '') ;;
        *) die "usage: $0 stop [--purge]" ;;
    esac
    if [[ ! -d $DIR ]]; then
        log "nothing to stop: $DIR does not exist"
        return 0
    fi
    stop_engine
    rm -f "$ENVFILE"
    if [[ -n $(our_engine_pids) ]]; then
        die "engine processes of $DIR are still alive: $(our_engine_pids | tr '\n' ' ')"
    fi
    if ((purge)); then
        if awk -v d="$DIR/" 'index($5, d) == 1 { found = 1 } END { exit !found }' \
            /proc/self/mountinfo; then
            die "not deleting $DIR: something is still mounted under it"
        fi
        rm -rf "$DIR"
        log "stopped and deleted $DIR"
    else
        log "stopped (state kept in $DIR; 'stop --purge' deletes it)"
    fi
}

cmd_env() {
    [[ -f $ENVFILE ]] || die "no env file at $ENVFILE; run: $0 start"
    engine_answers || die "the engine of $DIR does not answer; run: $0 start"
    cat "$ENVFILE"
}

cmd_status() {
    if engine_answers; then
        echo "running: $DIR (pid $(dockerd_pid || echo '?'), DOCKER_HOST=unix://$SOCK)"
    else
        echo "not running: $DIR"
        return 1
    fi
}

case ${1:-} in
    start) cmd_start ;;
    stop)
        shift
        cmd_stop "$@"
        ;;
    env) cmd_env ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 {start|stop [--purge]|env|status}   (state dir: \$DDIFF_PEERS_DIR, now $DIR)" >&2
        exit 2
        ;;
esac
