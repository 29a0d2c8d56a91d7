#!/usr/bin/env bash
# make stages: where a write's time goes on the nodes, stage by stage, at 1
# and 64 callers, on a local 3-node cluster of real processes (fsync on,
# loopback, the default log store) -> bench/stages.md.
#
# For each caller count: a warm-up run, then each node's
# raftlock_stage_seconds (cluster/stages.go) is read before and after one
# measured lockbench run, and the mean of every stage over that run is
# the difference of its _sum divided by the difference of its _count. The
# client's own view (pairs/s, acquire p50) is lockbench's.
#
# Settings (environment):
#   STAGES_DURATION  measured time per run (default 10s)
#   STAGES_CALLERS   caller counts (default "1 64")
#   STAGES_PROTOCOL  the Go client's protocol (default grpc)
#   STAGES_PORT      base port, nodes on +1..+3 (default 7290)
#   STAGES_DIR       data directory (default data/stages; wiped first)
#   STAGES_OUT       where stages.md goes (default bench)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh

duration=${STAGES_DURATION:-10s}
read -r -a callers <<<"${STAGES_CALLERS:-1 64}"
protocol=${STAGES_PROTOCOL:-grpc}
out=${STAGES_OUT:-bench}
export RAFTLOCK_CLUSTER_PORT=${STAGES_PORT:-7290}
export RAFTLOCK_CLUSTER_DIR=${STAGES_DIR:-data/stages}
export RAFTLOCK_CLUSTER_BIN=bin/bench/node

mkdir -p "$out"
bench_build
trap 'scripts/cluster.sh stop' EXIT
bench_fresh_cluster STAGES_PORT
eps=$(bench_endpoints)
work=$RAFTLOCK_CLUSTER_DIR/work
mkdir -p "$work"

# scrape N FILE: node N's stage sums and counts, "stage sum count" per line.
scrape() {
  curl -sf "http://127.0.0.1:$((RAFTLOCK_CLUSTER_PORT + $1))/metrics" | awk '
    /^raftlock_stage_seconds_(sum|count)\{/ {
      match($0, /stage="[^"]*"/); st = substr($0, RSTART + 7, RLENGTH - 8)
      if ($1 ~ /_sum\{/) sum[st] = $2; else cnt[st] = $2
    }
    END { for (s in cnt) print s, sum[s] + 0, cnt[s] }' | sort >"$2"
}

# leader: the index (1-3) of the node that leads.
leader() {
  local id
  id=$(curl -sf -H 'Content-Type: application/json' -d '{}' \
    "http://127.0.0.1:$((RAFTLOCK_CLUSTER_PORT + 1))/raftlock.v1.ClusterService/Status" | jq -r .leaderId)
  echo "${id#n}"
}

stages=(http propose leader_persist append_rpc follower_persist commit fsm_enqueue fsm_apply)
what() {
  case $1 in
  http) echo "an API call on the node that took it (the leader here): read, handler, Raft, answer written" ;;
  propose) echo "the handler's propose: Raft enqueue to applied result" ;;
  leader_persist) echo "the leader writes a batch of entries to its log (fsync), before it replicates them" ;;
  append_rpc) echo "one AppendEntries round trip from the leader: network, the follower's persist, answer" ;;
  follower_persist) echo "a follower writes the entries it received to its log (fsync)" ;;
  commit) echo "from the leader starting to persist an entry to its commit (majority persisted)" ;;
  fsm_enqueue) echo "handing committed entries to the FSM goroutine" ;;
  fsm_apply) echo "applying a batch to the lock table" ;;
  esac
}

report=$work/stages.md
{
  echo "# raftlock: where a write's time goes on the nodes"
  echo
  echo "Produced by \`make stages\` (STAGES_DURATION=$duration, protocol $protocol, log store $(grep -m1 -o 'log_store=[a-z]*\|"log_store":"[a-z]*"' "$RAFTLOCK_CLUSTER_DIR/n1/node.log" | grep -o '[a-z]*"\?$' | tr -d '"')${RAFTLOCK_NODE_ARGS:+, node flags $RAFTLOCK_NODE_ARGS}) on $(date -u '+%Y-%m-%d %H:%M') UTC:"
  echo "a 3-node cluster of real processes on loopback (fsync on), driven by lockbench (acquire → release"
  echo "per caller on its own key). For each stage, the mean over one measured run from each node's"
  echo "\`raftlock_stage_seconds\` (cluster/stages.go), in µs; the leader's column for the stages the"
  echo "leader runs, the followers' (mean of both) for theirs. Load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
} >"$report"

for c in "${callers[@]}"; do
  bin/bench/lockbench run --endpoints "$eps" --protocol "$protocol" --callers "$c" --duration 2s --warmup 0s --quiet --json >/dev/null
  l=$(leader)
  for i in 1 2 3; do scrape "$i" "$work/before-$i"; done
  res=$(bin/bench/lockbench run --endpoints "$eps" --protocol "$protocol" --callers "$c" --duration "$duration" --warmup 0s --quiet --json)
  for i in 1 2 3; do scrape "$i" "$work/after-$i"; done
  if [ "$(leader)" != "$l" ]; then echo "stages: the leader changed during the run; run again" >&2; exit 1; fi
  pairs=$(jq -r '.pairs_per_s | floor' <<<"$res")
  p50=$(jq -r '.acquire.p50_ms * 100 | round / 100' <<<"$res")
  # mean NODE STAGE: mean µs of STAGE on node NODE over the run, and its count.
  mean() {
    join "$work/before-$1" "$work/after-$1" | awk -v st="$2" '$1 == st {
      n = $5 - $3; if (n > 0) printf "%.0f %d", ($4 - $2) / n * 1e6, n; else printf "- 0" }'
  }
  label="$c caller"; [ "$c" = 1 ] || label="$c callers"
  {
    echo "## $label: $pairs pairs/s, acquire p50 $p50 ms (client side)"
    echo
    echo "| stage | leader µs (count) | followers µs (count) | what it is |"
    echo "| --- | ---: | ---: | --- |"
    for st in "${stages[@]}"; do
      read -r lm ln <<<"$(mean "$l" "$st")"
      fm=0 fn=0 k=0
      for i in 1 2 3; do
        [ "$i" = "$l" ] && continue
        read -r m n <<<"$(mean "$i" "$st")"
        if [ "${n:-0}" -gt 0 ]; then fm=$((fm + m)); fn=$((fn + n)); k=$((k + 1)); fi
      done
      fcol="–"
      [ "$k" -gt 0 ] && fcol="$((fm / k)) ($fn)"
      lcol="–"
      [ "${ln:-0}" -gt 0 ] && lcol="$lm ($ln)"
      echo "| $st | $lcol | $fcol | $(what "$st") |"
    done
    echo
  } >>"$report"
done
cp "$report" "$out/stages.md"
cat "$out/stages.md"
