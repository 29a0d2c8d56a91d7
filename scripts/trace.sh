#!/usr/bin/env bash
# make trace: the client side of one acquire, stage by stage, for each of
# the Go client's protocols at 1 and 64 callers, side by side in one run,
# on a local 3-node cluster of real processes (fsync on, loopback) ->
# bench/trace.md and the raw bench/trace.json.
#
# Every run is lockbench run --trace (cmd/lockbench/trace.go: time to
# first byte against total, stages, connection reuse). Rounds alternate
# the protocols, the order flipping every round, so drift in the machine's
# load hits each alike. A last pair of untraced runs at 1 caller shows what
# the trace itself costs.
#
# Settings (environment):
#   TRACE_ROUNDS    rounds (default 3)
#   TRACE_DURATION  measured time per run (default 8s); TRACE_WARMUP (default 2s)
#   TRACE_CALLERS   caller counts (default "1 64")
#   TRACE_PORT      base port, nodes on +1..+3 (default 7250)
#   TRACE_DIR       data directory (default data/trace; wiped first)
#   TRACE_OUT       where trace.md and trace.json go (default bench)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh

rounds=${TRACE_ROUNDS:-3}
duration=${TRACE_DURATION:-8s}
warmup=${TRACE_WARMUP:-2s}
read -r -a callers <<<"${TRACE_CALLERS:-1 64}"
out=${TRACE_OUT:-bench}
export RAFTLOCK_CLUSTER_PORT=${TRACE_PORT:-7250}
export RAFTLOCK_CLUSTER_DIR=${TRACE_DIR:-data/trace}
export RAFTLOCK_CLUSTER_BIN=bin/bench/node

# name | lockbench flags
protocols=(
  "gRPC over h2c (the default)|--protocol grpc"
  "Connect+proto over h2c|--protocol connect-proto"
  "Connect+proto over HTTP/1.1|--protocol connect-proto --http1"
  "Connect+JSON over HTTP/1.1|--protocol connect-json"
)

mkdir -p "$out"
bench_build
trap 'scripts/cluster.sh stop' EXIT
bench_fresh_cluster TRACE_PORT
eps=$(bench_endpoints)
pids=$(bench_pids)
raw=$RAFTLOCK_CLUSTER_DIR/trace.json
: >"$raw"
callers_name() { if [ "$1" = 1 ]; then echo "1 caller"; else echo "$1 callers"; fi; }
one() { # name flags...
  local name=$1
  shift
  echo "== $name (load $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo ?))"
  bin/bench/lockbench run --endpoints "$eps" --name "$name" --duration "$duration" --warmup "$warmup" \
    --pids "$pids" --json --quiet "$@" >>"$raw"
}
for r in $(seq "$rounds"); do
  order=("${protocols[@]}")
  if [ $((r % 2)) = 0 ]; then
    order=()
    for ((i = ${#protocols[@]} - 1; i >= 0; i--)); do order+=("${protocols[i]}"); done
  fi
  for c in "${callers[@]}"; do
    for p in "${order[@]}"; do
      IFS='|' read -r pname flags <<<"$p"
      # shellcheck disable=SC2086 # flags are words
      one "$(callers_name "$c"), $pname" --callers "$c" --trace $flags
    done
  done
done
for p in "${protocols[0]}" "${protocols[2]}"; do # what the trace costs
  IFS='|' read -r pname flags <<<"$p"
  for r in $(seq "$rounds"); do
    # shellcheck disable=SC2086 # flags are words
    one "1 caller, $pname, untraced" --callers 1 $flags
  done
done
cp "$raw" "$out/trace.json"
bin/bench/lockbench report --title "raftlock: the client side of an acquire, per protocol" --command "make trace (TRACE_ROUNDS=$rounds TRACE_DURATION=$duration TRACE_WARMUP=$warmup)" \
  --out "$out/trace.md" "$out/trace.json"
cat "$out/trace.md"
