#!/usr/bin/env bash
# make backup-scale: the backup figures of issue 19 on a local 3-node
# cluster of real processes (fsync on, loopback) holding BACKUP_LOCKS locks
# (default 1,000,000): how long `lockctl snapshot save` takes and how large
# the file is, what writes see meanwhile (acquire latency of a steady
# workload with and without a save running), and how long a new cluster
# takes from `lockctl snapshot restore` to every node ready with every lock.
#
# Writes bench/backup.md (BACKUP_OUT) and stops its cluster whatever
# happens. Settings: BACKUP_LOCKS, BACKUP_PORT (default 7270, nodes on
# +1..+3), BACKUP_DIR (default data/backup-scale; wiped first),
# BACKUP_CALLERS (default 4) and BACKUP_SECONDS (default 20) for the
# workload around the save.
set -euo pipefail
cd "$(dirname "$0")/.."
locks=${BACKUP_LOCKS:-1000000}
out=${BACKUP_OUT:-bench/backup.md}
callers=${BACKUP_CALLERS:-4}
seconds=${BACKUP_SECONDS:-20}
export RAFTLOCK_CLUSTER_PORT=${BACKUP_PORT:-7270}
export RAFTLOCK_CLUSTER_DIR=${BACKUP_DIR:-data/backup-scale}/cluster
export RAFTLOCK_CLUSTER_BIN=bin/bench/node
d=$RAFTLOCK_CLUSTER_DIR
work=$(dirname "$d")
base=$RAFTLOCK_CLUSTER_PORT
addr() { echo "127.0.0.1:$((base + $1))"; }
eps="$(addr 1),$(addr 2),$(addr 3)"
ctl() { bin/bench/lockctl --endpoints "$eps" "$@"; }

mkdir -p bin/bench "$(dirname "$out")"
CGO_ENABLED=0 ${GO:-go} build -o bin/bench/ ./cmd/node ./cmd/lockbench ./cmd/lockctl
for i in 1 2 3; do # a node left running there would answer for ours
  if curl -s -o /dev/null "http://$(addr "$i")/healthz"; then
    echo "port $(( base + i )) is in use: stop what runs there, or set BACKUP_PORT" >&2; exit 1
  fi
done
rm -rf "$work"
mkdir -p "$work"
trap 'scripts/cluster.sh stop >/dev/null' EXIT
scripts/cluster.sh start >/dev/null

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }
# json_num KEY: the first number under KEY in the JSON on stdin (any layout).
json_num() { tr -d '\n' | grep -oE "\"$1\": *[0-9.]+" | head -1 | grep -oE '[0-9.]+$'; }
locks_on() { # the locks node $1 holds (the JSON leaves out a 0)
  local n; n=$(curl -s -H 'Content-Type: application/json' -d '{}' "http://$(addr "$1")/raftlock.v1.ClusterService/Status" | grep -oE '"locks":"[0-9]+"' | grep -oE '[0-9]+' || true)
  echo "${n:-0}"
}
rss_all() { for i in 1 2 3; do printf 'n%s %s ' "$i" "$(awk '/^VmRSS/ {printf "%.0f", $2/1024}' "/proc/$(cat "$d/n$i/pid")/status")"; done; }

echo "filling $locks locks ..."
bin/bench/lockbench fill --endpoints "$eps" --count "$locks" --batch 64 --callers 8 --json >"$work/fill.json"
cat "$work/fill.json"
sleep 2

# The workload alone, then the same with a save in its middle. Latency is
# the acquire's (a write), as lockbench reports it.
bench() { bin/bench/lockbench run --endpoints "$eps" --callers "$callers" --duration "${seconds}s" --warmup 1s --quiet --json; }
echo "workload alone (${seconds}s) ..."
bench >"$work/alone.json"
echo "workload with a save ..."
bench >"$work/during.json" &
bench_pid=$!
sleep $(( seconds / 4 + 1 ))
t0=$(now)
ctl --json --timeout 10m snapshot save "$work/backup.rlb" >"$work/save.json"
save_s=$(since "$t0")
wait "$bench_pid"
file_bytes=$(stat -c %s "$work/backup.rlb")
rss_after_save=$(rss_all)
echo "save: ${save_s}s, $file_bytes bytes; RSS MiB $rss_after_save"
t0=$(now)
ctl snapshot inspect "$work/backup.rlb" >"$work/inspect.txt"
inspect_s=$(since "$t0")
cat "$work/inspect.txt"
summary() { # file, field: acquire p50/p99/p99.9/max in ms
  local a; a=$(tr -d '\n' <"$1" | grep -oE '"acquire": *\{[^}]*\}')
  printf '%.1f / %.1f / %.1f / %.1f' "$(echo "$a" | json_num p50_ms)" "$(echo "$a" | json_num p99_ms)" "$(echo "$a" | json_num p999_ms)" "$(echo "$a" | json_num max_ms)"
}
alone=$(summary "$work/alone.json")
during=$(summary "$work/during.json")
alone_rate=$(printf '%.0f' "$(json_num pairs_per_s <"$work/alone.json")")
during_rate=$(printf '%.0f' "$(json_num pairs_per_s <"$work/during.json")")
echo "acquire p50/p99/p99.9/max ms: alone $alone ($alone_rate pairs/s); with a save $during ($during_rate pairs/s)"

# The disaster: every node killed and its data deleted; a new cluster of
# empty nodes; the restore, until every node is ready with every lock.
for i in 1 2 3; do kill -KILL "$(cat "$d/n$i/pid")"; done
for i in 1 2 3; do
  while kill -0 "$(cat "$d/n$i/pid")" 2>/dev/null; do sleep 0.05; done
  mv "$d/n$i/node.log" "$work/n$i-lost.log"
  rm -rf "${d:?}/n$i"
done
scripts/cluster.sh start >/dev/null
held_before=$(locks_on 1)
t0=$(now)
ctl --json --timeout 10m snapshot restore "$work/backup.rlb" >"$work/restore.json"
restore_call_s=$(since "$t0")
restored=$(json_num locks <"$work/restore.json") # the backup's: the fill and the workload's held locks
for _ in $(seq 6000); do
  ok=1
  for i in 1 2 3; do
    curl -sf "http://$(addr "$i")/readyz" >/dev/null && [ "$(locks_on "$i")" = "$restored" ] || { ok=0; break; }
  done
  [ $ok = 1 ] && break
  sleep 0.05
done
[ $ok = 1 ] || { echo "the restored cluster did not become ready with $restored locks on every node" >&2; exit 1; }
restore_s=$(since "$t0")
start_index=$(grep -o '"index": [0-9]*' "$work/restore.json" | awk '{print $2}' | sort -n | tail -1)
echo "restore: the call ${restore_call_s}s, every node ready with $restored locks ${restore_s}s after it started (before: $held_before locks); RSS MiB $(rss_all)"
token=$(ctl --json acquire --owner after-restore after-restore | grep -o '"token": [0-9]*' | grep -o '[0-9]*$')
scripts/cluster.sh stop >/dev/null

echo "the write pause of a snapshot, under the lock and replayed, in one process ..."
pause=$(PAUSE_LOCKS=$locks ${GO:-go} test -run '^$' -bench BenchmarkSnapshotPause -benchtime 3x -timeout 30m ./fsm/raftfsm/ | grep '^BenchmarkSnapshotPause')

{
  echo "# raftlock backup figures"
  echo
  echo "Produced by \`make backup-scale\` (scripts/backup-scale.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'): a 3-node cluster of real processes"
  echo "on one machine, fsync on, filled with $locks locks that never expire (\`lockbench fill\`, 64 keys per Acquire)."
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| figure | value |"
  echo "| --- | --- |"
  echo "| \`lockctl snapshot save\` ($locks locks) | $save_s s |"
  echo "| backup file | $((file_bytes / 1024 / 1024)) MiB ($file_bytes bytes) |"
  echo "| \`lockctl snapshot inspect\` (checksums, full decode) | $inspect_s s |"
  echo "| acquire latency p50 / p99 / p99.9 / max, $callers callers, ${seconds} s, no save (ms) | $alone ($alone_rate pairs/s) |"
  echo "| the same with a save in the middle (ms) | $during ($during_rate pairs/s) |"
  echo "| \`lockctl snapshot restore\` into a new empty cluster: the call | $restore_call_s s |"
  echo "| restore to every node ready with all $restored locks of the backup | $restore_s s |"
  echo "| index the restored log starts at; the first new token | $start_index; $token |"
  echo "| RSS per node after the save (MiB) | $rss_after_save |"
  echo
  echo "How long writes wait while Raft takes a snapshot of the same $locks locks, encoded under the table's lock"
  echo "(before issue 19, and the fallback) or rebuilt from the last snapshot and the log (\`PAUSE_LOCKS=$locks go test -run '^\$'"
  echo "-bench BenchmarkSnapshotPause -benchtime 3x ./fsm/raftfsm/\`; one write every 2 ms on the apply goroutine, the log in raft-wal):"
  echo
  echo '```'
  echo "$pause"
  echo '```'
} >"$out"
cat "$out"
