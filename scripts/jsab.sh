#!/usr/bin/env bash
# A/B of the JavaScript provider: the working tree's clients/js against the
# same package at other git revisions, and the Go client (lockbench), on one
# 3-node cluster, in alternating rounds (the drivers' order flips every
# round), written as a lockbench compare report with the Go client as the
# baseline. For performance work on clients/js; make compare is the
# comparison with etcd.
#
#   scripts/jsab.sh [REV...]      e.g. scripts/jsab.sh main   (drivers: raftlock, js, js@main)
#
# Each REV is checked out (git worktree, detached) under JSAB_OUT/rev-*; its
# run uses that revision's clients/js with the working tree's load tool
# (clients/js/bench, loaded with --package), so only the package differs.
#
# Settings (environment):
#   JSAB_ROUNDS    rounds (default 3)
#   JSAB_DURATION  measured time per run (default 5s); JSAB_WARMUP (default 2s)
#   JSAB_ONLY      ';'-separated flag sets (default: --callers 1;--callers 16;--callers 64)
#   JSAB_API       jsbench --api for every js driver (default provider)
#   JSAB_GO_FLAGS  flags of the Go client (default "--protocol grpc", its default; e.g. "--protocol connect-proto --http1")
#   JSAB_PORT      base port (default 7230: nodes on +1..+3)
#   JSAB_OUT       results and report (default data/jsab)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh
rounds=${JSAB_ROUNDS:-3}
duration=${JSAB_DURATION:-5s}
warmup=${JSAB_WARMUP:-2s}
api=${JSAB_API:-provider}
read -r -a goflags <<<"${JSAB_GO_FLAGS:---protocol grpc}"
out=${JSAB_OUT:-data/jsab}
IFS=';' read -r -a workloads <<<"${JSAB_ONLY:---callers 1;--callers 16;--callers 64}"
export RAFTLOCK_CLUSTER_PORT=${JSAB_PORT:-7230}
export RAFTLOCK_CLUSTER_DIR=$out/cluster
export RAFTLOCK_CLUSTER_BIN=bin/bench/node
mkdir -p "$out"
bench_build
drivers=(raftlock js)
declare -A pkg=([js]=clients/js)
for rev in "$@"; do
  dir=$out/rev-$(echo "$rev" | tr -c 'A-Za-z0-9._\n-' _)
  git worktree remove --force "$dir" 2>/dev/null || rm -rf "$dir"
  git worktree add --detach --force "$dir" "$rev" >/dev/null
  drivers+=("js@$rev")
  pkg[js@$rev]=$dir/clients/js
done
cleanup() {
  scripts/cluster.sh stop >/dev/null || true
  for rev in "$@"; do git worktree remove --force "$out/rev-$(echo "$rev" | tr -c 'A-Za-z0-9._\n-' _)" 2>/dev/null || true; done
}
trap 'cleanup "$@"' EXIT
bench_fresh_cluster JSAB_PORT
eps=$(bench_endpoints)
raw=$out/results.json
: >"$raw"
for r in $(seq "$rounds"); do
  order=("${drivers[@]}")
  if [ $((r % 2)) = 0 ]; then
    order=()
    for ((i = ${#drivers[@]} - 1; i >= 0; i--)); do order+=("${drivers[i]}"); done
  fi
  for w in "${workloads[@]}"; do
    for d in "${order[@]}"; do
      echo "== round $r of $rounds: $w: $d (load $(cut -d' ' -f1 /proc/loadavg))"
      common=(--endpoints "$eps" --duration "$duration" --warmup "$warmup" --pids "$(bench_pids)" --json --quiet)
      if [ "$d" = raftlock ]; then
        # shellcheck disable=SC2086 # w is flags
        bin/bench/lockbench run "${common[@]}" --driver raftlock "${goflags[@]}" $w >>"$raw"
      else
        # shellcheck disable=SC2086 # w is flags
        node clients/js/bench/run.js "${common[@]}" --driver "$d" --api "$api" --package "${pkg[$d]}" $w >>"$raw"
      fi
    done
  done
done
versus=
for d in "${drivers[@]:2}"; do versus+="$d=js,"; done
bin/bench/lockbench compare --baseline raftlock --drivers "${drivers[*]}" --versus "$versus" \
  --command "scripts/jsab.sh $* (JSAB_ROUNDS=$rounds JSAB_DURATION=$duration JSAB_WARMUP=$warmup JSAB_API=$api JSAB_GO_FLAGS=${goflags[*]})" \
  --out "$out/report.md" "$raw"
cat "$out/report.md"
