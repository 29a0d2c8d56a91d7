#!/usr/bin/env bash
# A/B comparison of two node builds (or two node environments) on the
# same machine, for performance work: rounds alternate A and B, each on a
# fresh 3-node cluster, so that drift in the machine's load hits both.
#
#   scripts/ab.sh NODE_BIN_A NODE_BIN_B          e.g. bin/ab/node-before bin/ab/node-after
#
# Settings (environment):
#   AB_ROUNDS     rounds (default 3)
#   AB_DURATION   measured time per workload (default 8s); AB_WARMUP (default 2s)
#   AB_AGE        time spent driving 64 callers before measuring, so the Raft log
#                 has been snapshotted and truncated at least once (default 40s)
#   AB_ENV_A, AB_ENV_B   extra environment for the nodes of A or B, e.g. GOGC=400
#   AB_WORKLOADS  ';'-separated lockbench flag sets (default: the standard table)
#   AB_OUT        result directory (default data/ab); the report is AB_OUT/report.md
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh
[ $# -eq 2 ] || { echo "usage: $0 NODE_BIN_A NODE_BIN_B" >&2; exit 2; }
rounds=${AB_ROUNDS:-3}
duration=${AB_DURATION:-8s}
warmup=${AB_WARMUP:-2s}
age=${AB_AGE:-40s}
out=${AB_OUT:-data/ab}
IFS=';' read -r -a workloads <<<"${AB_WORKLOADS:---callers 1;--callers 16;--callers 64;--callers 16 --keys 1 --wait 10s}"
export RAFTLOCK_CLUSTER_PORT=${AB_PORT:-7190}
export RAFTLOCK_CLUSTER_DIR=$out/cluster
eps=$(bench_endpoints)
mkdir -p bin/bench "$out"
CGO_ENABLED=0 ${GO:-go} build -o bin/bench/ ./cmd/lockbench
bench_ports_free AB_PORT
trap 'scripts/cluster.sh stop >/dev/null' EXIT
: >"$out/results.json"
for r in $(seq "$rounds"); do
  for side in A B; do
    if [ $side = A ]; then bin=$1 envs=${AB_ENV_A:-}; else bin=$2 envs=${AB_ENV_B:-}; fi
    rm -rf "$RAFTLOCK_CLUSTER_DIR"
    # shellcheck disable=SC2086 # envs are words
    env $envs RAFTLOCK_CLUSTER_BIN="$bin" scripts/cluster.sh start >/dev/null
    pids=$(bench_pids)
    if [ "$age" != 0s ]; then
      bin/bench/lockbench run --endpoints "$eps" --callers 64 --duration "$age" --warmup 0s --quiet >/dev/null
    fi
    for w in "${workloads[@]}"; do
      name="$side: $w"
      echo "round $r $name (load $(cut -d' ' -f1 /proc/loadavg))"
      # shellcheck disable=SC2086 # flags are words
      bin/bench/lockbench run --endpoints "$eps" --name "$name" --duration "$duration" --warmup "$warmup" \
        --pids "$pids" --json --quiet $w >>"$out/results.json"
    done
    scripts/cluster.sh stop >/dev/null
  done
done
bin/bench/lockbench report --command "scripts/ab.sh $1 $2 (A env: ${AB_ENV_A:-none}; B env: ${AB_ENV_B:-none})" \
  --out "$out/report.md" "$out/results.json"
cat "$out/report.md"
