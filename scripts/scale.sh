#!/usr/bin/env bash
# make scale: the scale figures of issue 8 on a local 3-node cluster of
# real processes (fsync on, loopback): memory per held lock, snapshot size
# and time, and restart-to-ready time with SCALE_LOCKS held locks, plus the
# lock table's Apply cost at 1k and 1M locks (go test -bench BenchmarkApply).
#
# Writes bench/scale.md (SCALE_OUT) and stops its cluster whatever happens.
# Settings: SCALE_LOCKS (default 1000000), SCALE_PORT (default 7180, nodes
# on +1..+3), SCALE_DIR (default data/scale; wiped first).
set -euo pipefail
cd "$(dirname "$0")/.."
locks=${SCALE_LOCKS:-1000000}
out=${SCALE_OUT:-bench/scale.md}
export RAFTLOCK_CLUSTER_PORT=${SCALE_PORT:-7180}
export RAFTLOCK_CLUSTER_DIR=${SCALE_DIR:-data/scale}
export RAFTLOCK_CLUSTER_BIN=bin/bench/node
d=$RAFTLOCK_CLUSTER_DIR
base=$RAFTLOCK_CLUSTER_PORT
addr() { echo "127.0.0.1:$((base + $1))"; }
eps="$(addr 1),$(addr 2),$(addr 3)"

mkdir -p bin/bench "$(dirname "$out")"
CGO_ENABLED=0 ${GO:-go} build -o bin/bench/ ./cmd/node ./cmd/lockbench
for i in 1 2 3; do # a node left running there would answer for ours
  if curl -s -o /dev/null "http://127.0.0.1:$((RAFTLOCK_CLUSTER_PORT + i))/healthz"; then
    echo "port $((RAFTLOCK_CLUSTER_PORT + i)) is in use: stop what runs there, or set SCALE_PORT" >&2; exit 1
  fi
done
rm -rf "$d"
trap 'scripts/cluster.sh stop >/dev/null' EXIT
scripts/cluster.sh start >/dev/null

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.3f", a - b }'; }
rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2/1024}' "/proc/$(cat "$d/n$1/pid")/status"; }
hwm_mib() { awk '/^VmHWM/ {printf "%.0f", $2/1024}' "/proc/$(cat "$d/n$1/pid")/status"; }
rss_all() { echo "n1 $(rss_mib 1), n2 $(rss_mib 2), n3 $(rss_mib 3)"; }
heap_mib() { curl -s "http://$(addr "$1")/metrics" | awk '/^go_memstats_heap_alloc_bytes / {printf "%.0f", $2/1048576}'; }
heap_all() { echo "n1 $(heap_mib 1), n2 $(heap_mib 2), n3 $(heap_mib 3)"; }
hwm_all() { echo "n1 $(hwm_mib 1), n2 $(hwm_mib 2), n3 $(hwm_mib 3)"; }
role() { curl -s -H 'Content-Type: application/json' -d '{}' "http://$(addr "$1")/raftlock.v1.ClusterService/Status" | grep -o '"role":"[a-z]*"' | cut -d'"' -f4; }
wait_ready() { # node index, timeout in 0.01 s steps
  for _ in $(seq "$2"); do curl -sf "http://$(addr "$1")/readyz" >/dev/null && return 0; sleep 0.01; done
  echo "n$1 not ready in time" >&2; return 1
}
snapshots() { grep -c "snapshot complete up to" "$d/n$1/node.log" || true; }
# Waits for node i's next snapshot after there were $2, and prints how long
# it took by the node's own log (starting -> complete).
wait_snapshot() {
  for _ in $(seq 900); do [ "$(snapshots "$1")" -gt "$2" ] && break; sleep 0.1; done
  [ "$(snapshots "$1")" -gt "$2" ] || { echo "no snapshot on n$1 within 90s" >&2; return 1; }
  local t0 t1
  t0=$(grep "starting snapshot up to" "$d/n$1/node.log" | tail -1 | sed -E 's/^time=([^ ]*) .*/\1/')
  t1=$(grep "snapshot complete up to" "$d/n$1/node.log" | tail -1 | sed -E 's/^time=([^ ]*) .*/\1/')
  awk -v a="$(date -d "$t1" +%s.%N)" -v b="$(date -d "$t0" +%s.%N)" 'BEGIN { printf "%.3f", a - b }'
}

leader=0
for i in 1 2 3; do [ "$(role $i)" = leader ] && leader=$i; done
follower=$((leader % 3 + 1))
rss_empty=$(rss_all)
echo "empty cluster: RSS MiB $rss_empty; leader n$leader"

echo "filling $locks locks ..."
fill=$(bin/bench/lockbench fill --endpoints "$eps" --count "$locks" --batch 64 --callers 8 --json)
echo "$fill"
fill_s=$(echo "$fill" | sed -E 's/.*"elapsed_s":([0-9.]+).*/\1/')
fill_rate=$(echo "$fill" | sed -E 's/.*"locks_per_s":([0-9.]+).*/\1/')
sleep 2
rss_full=$(rss_all)
heap_full=$(heap_all)
echo "after the fill: RSS MiB $rss_full; Go heap MiB $heap_full"

# Snapshot: the fill's entries alone may be under the threshold (16384
# entries); a short run of pairs takes the log over it, and Raft snapshots
# at its next check (every 30-60 s).
before=$(snapshots "$leader")
bin/bench/lockbench run --endpoints "$eps" --callers 16 --duration 3s --warmup 0s --quiet >/dev/null
echo "waiting for the leader's snapshot ..."
snap_s=$(wait_snapshot "$leader" "$before")
snap_dir=$(ls -td "$d/n$leader"/snapshots/*/ | head -1)
snap_bytes=$(stat -c %s "$snap_dir/state.bin")
sleep 2
rss_snap=$(rss_all)
hwm_snap=$(hwm_all)
echo "snapshot: ${snap_s}s, $snap_bytes bytes; RSS MiB $rss_snap; peak $hwm_snap"
# What stays: the runtime hands freed memory back to the system over
# tens of seconds.
sleep 30
rss_settled=$(rss_all)
heap_settled=$(heap_all)
echo "30 s later: RSS MiB $rss_settled; Go heap MiB $heap_settled"

# Restart to ready: a follower (graceful stop, start, /readyz), then the
# whole cluster. The follower needs a snapshot of its own to restart from,
# or it replays the whole log: wait for it too.
fbefore=$(snapshots "$follower")
if [ "$fbefore" -eq 0 ]; then wait_snapshot "$follower" 0 >/dev/null; fi
kill -TERM "$(cat "$d/n$follower/pid")"
while kill -0 "$(cat "$d/n$follower/pid")" 2>/dev/null; do sleep 0.05; done
rm -f "$d/n$follower/pid"
t0=$(now)
scripts/cluster.sh start >/dev/null
wait_ready "$follower" 6000
restart_follower=$(since "$t0")
rss_follower=$(rss_mib "$follower")
echo "follower n$follower restart to ready: ${restart_follower}s; RSS $rss_follower MiB"

scripts/cluster.sh stop >/dev/null
t0=$(now)
scripts/cluster.sh start >/dev/null
for i in 1 2 3; do wait_ready "$i" 6000; done
restart_all=$(since "$t0")
echo "whole cluster restart to ready: ${restart_all}s; RSS MiB $(rss_all)"
held=$(curl -s -H 'Content-Type: application/json' -d '{}' "http://$(addr 1)/raftlock.v1.ClusterService/Status" | grep -o '"locks":"[0-9]*"' | cut -d'"' -f4)

echo "Apply cost at 1k and 1M locks ..."
apply=$(${GO:-go} test -run '^$' -bench BenchmarkApply -benchmem ./fsm/ | grep '^BenchmarkApply')

{
  echo "# raftlock scale figures"
  echo
  echo "Produced by \`make scale\` (scripts/scale.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'): a 3-node cluster of real processes"
  echo "on one machine, fsync on, filled with $locks locks that never expire (64 keys per Acquire, 8 at a time)."
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Log store: $(grep -m1 -o '"log_store":"[a-z]*"\|log_store=[a-z]*' "$RAFTLOCK_CLUSTER_DIR/n1/node.log" | grep -o '[a-z]*"\?$' | tr -d '"')${RAFTLOCK_NODE_ARGS:+ (node flags: $RAFTLOCK_NODE_ARGS)}."
  echo
  echo "| figure | value |"
  echo "| --- | --- |"
  echo "| fill: $locks locks | ${fill_s%.*} s ($(printf '%.0f' "$fill_rate") locks/s) |"
  echo "| RSS per node, empty (MiB) | $rss_empty |"
  echo "| RSS per node, $locks locks held (MiB) | $rss_full |"
  echo "| Go heap per node (live and not yet collected), same moment (MiB) | $heap_full |"
  echo "| RSS per node 2 s after the snapshot (MiB) | $rss_snap |"
  echo "| RSS per node 30 s after the snapshot (MiB) | $rss_settled (Go heap: $heap_settled) |"
  echo "| peak RSS per node so far (VmHWM, MiB) | $hwm_snap |"
  echo "| snapshot of the leader (n$leader) | $(printf '%.2f' "$snap_s") s, $((snap_bytes / 1024 / 1024)) MiB ($snap_bytes bytes) |"
  echo "| restart to ready, one follower (n$follower) | $(printf '%.2f' "$restart_follower") s (RSS after: $rss_follower MiB) |"
  echo "| restart to ready, whole cluster | $(printf '%.2f' "$restart_all") s |"
  echo "| locks held after the restarts | $held |"
  echo
  echo "Apply (decode + apply of one uncontended acquire or release, \`go test -bench BenchmarkApply -benchmem ./fsm/\`):"
  echo
  echo '```'
  echo "$apply"
  echo '```'
} >"$out"
cat "$out"
