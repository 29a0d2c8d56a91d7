# shellcheck shell=bash
# Helpers of the benchmark scripts (bench.sh, ab.sh, compare.sh, trace.sh),
# sourced, not run. They work on the cluster of scripts/cluster.sh named by
# RAFTLOCK_CLUSTER_PORT and RAFTLOCK_CLUSTER_DIR.

# bench_endpoints prints the three nodes' host:port, comma-separated.
bench_endpoints() {
  local base=$RAFTLOCK_CLUSTER_PORT
  echo "127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"
}

# bench_ports_free fails, naming the variable to change, when something
# answers HTTP on one of the nodes' ports: a node left running there would
# answer for ours.
bench_ports_free() {
  local var=$1 i port
  for i in 1 2 3; do
    port=$((RAFTLOCK_CLUSTER_PORT + i))
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz"; then
      echo "port $port is in use: stop what runs there, or set $var" >&2
      return 1
    fi
  done
}

# bench_pids prints lockbench's --pids for the running nodes: n1=PID,...
bench_pids() {
  local d=$RAFTLOCK_CLUSTER_DIR
  echo "n1=$(cat "$d/n1/pid"),n2=$(cat "$d/n2/pid"),n3=$(cat "$d/n3/pid")"
}

# bench_build builds the node and lockbench into bin/bench.
bench_build() {
  mkdir -p bin/bench
  CGO_ENABLED=0 ${GO:-go} build -o bin/bench/ ./cmd/node ./cmd/lockbench
}

# bench_fresh_cluster starts the cluster on an empty data directory, after
# checking that its ports are free (naming the variable that moves them).
# The caller traps `scripts/cluster.sh stop` on EXIT.
bench_fresh_cluster() {
  bench_ports_free "$1"
  rm -rf "$RAFTLOCK_CLUSTER_DIR"
  scripts/cluster.sh start
}
