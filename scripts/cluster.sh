#!/usr/bin/env bash
# Runs a local 3-node raftlock cluster of real processes on loopback.
#
#   scripts/cluster.sh start    build bin/node, start n1-n3 on 127.0.0.1:7071-7073
#   scripts/cluster.sh stop     SIGTERM all three (graceful), wait for them
#   scripts/cluster.sh status   print each node's ClusterService/Status
#
# Data and logs go under ${RAFTLOCK_CLUSTER_DIR:-data/cluster}/nX/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${RAFTLOCK_CLUSTER_DIR:-data/cluster}
peers="n1=127.0.0.1:7071,n2=127.0.0.1:7072,n3=127.0.0.1:7073"

start() {
  mkdir -p bin
  CGO_ENABLED=0 go build -o bin/node ./cmd/node
  for i in 1 2 3; do
    mkdir -p "$dir/n$i"
    if [ -f "$dir/n$i/pid" ] && kill -0 "$(cat "$dir/n$i/pid")" 2>/dev/null; then
      echo "n$i already running (pid $(cat "$dir/n$i/pid"))"; continue
    fi
    nohup bin/node --id "n$i" --listen "127.0.0.1:707$i" --data-dir "$dir/n$i" \
      --initial-cluster "$peers" >"$dir/n$i/node.log" 2>&1 &
    echo $! >"$dir/n$i/pid"
    echo "n$i started on 127.0.0.1:707$i (pid $!, log $dir/n$i/node.log)"
  done
  for _ in $(seq 100); do
    if curl -sf http://127.0.0.1:7071/readyz >/dev/null && curl -sf http://127.0.0.1:7072/readyz >/dev/null &&
      curl -sf http://127.0.0.1:7073/readyz >/dev/null; then
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
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$f"
    echo "n$i stopped"
  done
}

status() {
  for i in 1 2 3; do
    printf 'n%s: ' "$i"
    curl -s -H 'Content-Type: application/json' -d '{}' \
      "http://127.0.0.1:707$i/raftlock.v1.ClusterService/Status" || echo "down"
    echo
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
