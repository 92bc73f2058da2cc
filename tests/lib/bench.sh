#!/usr/bin/env bash
# Helpers shared by the benchmarks in tests/bench/ (source it; it sets no shell options).
#
#   source tests/lib/bench.sh
#   ddiff=$(bench_ddiff "$root")               # $DDIFF_BIN, else a release build of the repo
#   addr=$(bench_serve "$ddiff" "$work/reg")   # a ddiff server on that root, 127.0.0.1:PORT
#   bench_stop_servers "$work"                 # every server started under $work

# bench_ddiff ROOT: the ddiff binary to measure: $DDIFF_BIN, else ROOT's release build.
bench_ddiff() {
  if [[ -n ${DDIFF_BIN:-} ]]; then
    echo "$DDIFF_BIN"
  else
    (cd "$1" && cargo build --release --bin ddiff -q) >&2 || return 1
    echo "$1/target/release/ddiff"
  fi
}

# bench_serve DDIFF ROOT: starts `ddiff server` on ROOT in the background (pid in ROOT.pid,
# output in ROOT.out and ROOT.log) and prints its address once it listens (10 s at most).
bench_serve() {
  "$1" server --addr 127.0.0.1:0 --root "$2" >"$2.out" 2>"$2.log" &
  echo $! >"$2.pid"
  for _ in $(seq 200); do
    grep -q listening "$2.out" 2>/dev/null && break
    sleep 0.05
  done
  sed -n 's#.*listening on http://\([^ ]*\).*#\1#p' "$2.out"
}

# bench_stop_servers DIR: stops the servers bench_serve started with a root in DIR.
bench_stop_servers() {
  local p
  for p in "$1"/*.pid; do
    [[ -f $p ]] && kill "$(cat "$p")" 2>/dev/null
  done
  return 0
}
