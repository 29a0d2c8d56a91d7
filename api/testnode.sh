# Sourced by scripts that need one live raftlock node (api/examples.sh,
# clients/python/run_example.sh). start_node builds ./cmd/node into a
# temporary directory, starts it as node n1 on a free 127.0.0.1 port with a
# temporary data directory, waits (at most 15 s) until it is ready, and sets
# NODE_ADDR and NODE_LOG. The node is stopped and the directory removed when
# the script exits, also on failure.

export PATH="$PATH:/usr/local/go/bin"
NODE_TMP=$(mktemp -d)
NODE_PID=
NODE_LOG="$NODE_TMP/node.log"

stop_node() {
  if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  rm -rf "$NODE_TMP"
}
trap stop_node EXIT

start_node() {
  go build -o "$NODE_TMP/node" ./cmd/node
  # A free port: bind port 0, read it, release it.
  local port
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  NODE_ADDR="127.0.0.1:$port"
  "$NODE_TMP/node" --id n1 --listen "$NODE_ADDR" --data-dir "$NODE_TMP/data" >"$NODE_LOG" 2>&1 &
  NODE_PID=$!
  local deadline=$((SECONDS + 15))
  until "$NODE_TMP/node" healthcheck --addr "$NODE_ADDR" 2>/dev/null; do
    if ! kill -0 "$NODE_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "the node did not become ready; its log:" >&2
      cat "$NODE_LOG" >&2
      exit 1
    fi
    sleep 0.1
  done
}
