#!/usr/bin/env bash
# Runs a local 3-node raftlock cluster of real processes on loopback.
#
#   scripts/cluster.sh start    build bin/node, start n1-n3 on 127.0.0.1:7071-7073
#   scripts/cluster.sh stop     SIGTERM all three (graceful), wait for them
#   scripts/cluster.sh status   print each node's ClusterService/Status
#
# Data and logs go under ${RAFTLOCK_CLUSTER_DIR:-data/cluster}/nX/.
# Other settings, for tools that run a cluster of their own beside yours
# (make bench does):
#   RAFTLOCK_CLUSTER_PORT  base port; the nodes listen on base+1..base+3 (default 7070)
#   RAFTLOCK_CLUSTER_BIN   the node binary (default bin/node, built by start)
#   RAFTLOCK_NODE_ARGS     extra flags for every node, e.g. --debug
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${RAFTLOCK_CLUSTER_DIR:-data/cluster}
base=${RAFTLOCK_CLUSTER_PORT:-7070}
bin=${RAFTLOCK_CLUSTER_BIN:-bin/node}
read -r -a extra <<<"${RAFTLOCK_NODE_ARGS:-}"
addr() { echo "127.0.0.1:$((base + $1))"; }
peers="n1=$(addr 1),n2=$(addr 2),n3=$(addr 3)"

start() {
  if [ -z "${RAFTLOCK_CLUSTER_BIN:-}" ]; then
    mkdir -p bin
    CGO_ENABLED=0 ${GO:-go} build -o bin/node ./cmd/node
  fi
  for i in 1 2 3; do
    mkdir -p "$dir/n$i"
    if [ -f "$dir/n$i/pid" ] && kill -0 "$(cat "$dir/n$i/pid")" 2>/dev/null; then
      echo "n$i already running (pid $(cat "$dir/n$i/pid"))"; continue
    fi
    nohup "$bin" --id "n$i" --listen "$(addr "$i")" --data-dir "$dir/n$i" \
      --initial-cluster "$peers" ${extra[@]+"${extra[@]}"} >>"$dir/n$i/node.log" 2>&1 &
    echo $! >"$dir/n$i/pid"
    echo "n$i started on $(addr "$i") (pid $!, log $dir/n$i/node.log)"
  done
  for _ in $(seq 100); do
    if curl -sf "http://$(addr 1)/readyz" >/dev/null && curl -sf "http://$(addr 2)/readyz" >/dev/null &&
      curl -sf "http://$(addr 3)/readyz" >/dev/null; then
      echo "cluster ready"; return 0
    fi
    sleep 0.1
  done
  echo "cluster not ready after 10s; see $dir/nX/node.log" >&2; return 1
}

stop() {
  for i in 1 2 3; do
    f="$dir/n$i/pid"
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "n$i did not stop within 15s of SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
    echo "n$i stopped"
  done
}

status() {
  for i in 1 2 3; do
    printf 'n%s: ' "$i"
    curl -s -H 'Content-Type: application/json' -d '{}' \
      "http://$(addr "$i")/raftlock.v1.ClusterService/Status" || echo "down"
    echo
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
