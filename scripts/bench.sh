#!/usr/bin/env bash
# make bench: the standard table of issue 8 on a local 3-node cluster of
# real processes (the normal node binary, fsync on, loopback), measured
# with lockbench through the Go client.
#
# It starts its own cluster on 127.0.0.1:7181-7183 with data under
# data/bench (so it does not clash with `make cluster`), runs every
# workload BENCH_REPEAT times (round robin, so a burst of other work on
# the machine hits different workloads), writes bench/results.md, the raw
# bench/results.json and the plot bench/latency.png, and stops the cluster
# whatever happens.
#
# Settings (environment):
#   BENCH_DURATION  measured time per run        (default 10s)
#   BENCH_WARMUP    warm-up per run              (default 2s)
#   BENCH_REPEAT    runs per workload            (default 3)
#   BENCH_OUT       where the results go         (default bench)
#   BENCH_PROTOCOL  grpc, connect-proto or connect-json (default grpc)
#   BENCH_PORT      base port, nodes on +1..+3   (default 7180)
#   BENCH_DIR       data directory               (default data/bench; wiped first)
#   BENCH_NODE_ARGS extra node flags, e.g. --debug for /debug/pprof
#   BENCH_ONLY      run only the workloads whose name contains this text
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh

duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-2s}
repeat=${BENCH_REPEAT:-3}
out=${BENCH_OUT:-bench}
protocol=${BENCH_PROTOCOL:-grpc}
export RAFTLOCK_CLUSTER_PORT=${BENCH_PORT:-7180}
export RAFTLOCK_CLUSTER_DIR=${BENCH_DIR:-data/bench}
export RAFTLOCK_CLUSTER_BIN=bin/bench/node
export RAFTLOCK_NODE_ARGS=${BENCH_NODE_ARGS:-}
eps=$(bench_endpoints)

# The standard table: name | target | lockbench flags.
workloads=(
  "1 caller, own key|acquire p50 <= 0.5 ms|--callers 1"
  "16 callers, own keys|>= 4,000 pairs/s|--callers 16"
  "64 callers, own keys|>= 9,000 pairs/s, p99 <= 20 ms|--callers 64"
  "16 callers, 1 shared key|>= 1,500 pairs/s|--callers 16 --keys 1 --wait 10s"
  # Not in the issue's table: what the wire protocol costs, for comparison.
  "64 callers, own keys, Connect over HTTP/1.1|(comparison)|--callers 64 --protocol connect-proto --http1"
)

mkdir -p "$out"
bench_build
trap 'scripts/cluster.sh stop' EXIT
bench_fresh_cluster BENCH_PORT

pids=$(bench_pids)
raw=$(mktemp)
trap 'scripts/cluster.sh stop; rm -f "$raw"' EXIT
echo "load before the runs: $(cat /proc/loadavg 2>/dev/null || echo unknown)"
for r in $(seq "$repeat"); do
  for w in "${workloads[@]}"; do
    IFS='|' read -r name target flags <<<"$w"
    case "$name" in *"${BENCH_ONLY:-}"*) ;; *) continue ;; esac
    echo "== run $r of $repeat: $name"
    # shellcheck disable=SC2086 # flags are words
    case "$flags" in *--protocol*) proto=() ;; *) proto=(--protocol "$protocol") ;; esac
    bin/bench/lockbench run --endpoints "$eps" ${proto[@]+"${proto[@]}"} --name "$name" --target "$target" \
      --duration "$duration" --warmup "$warmup" --pids "$pids" --json $flags >>"$raw"
  done
done
cp "$raw" "$out/results.json"
bin/bench/lockbench report --command "make bench (BENCH_DURATION=$duration BENCH_WARMUP=$warmup BENCH_REPEAT=$repeat BENCH_PROTOCOL=$protocol)" --out "$out/results.md" --plot "$out/latency.png" "$out/results.json"
cat "$out/results.md"
