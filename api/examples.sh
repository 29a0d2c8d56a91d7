#!/usr/bin/env bash
# Runs every example of api/README.md against a real node and checks what
# each prints (api/examples-check.mjs says how). Builds ./cmd/node into a
# temporary directory, starts one node on a free port with a temporary data
# directory, and stops it on exit, also on failure.
#
#   bash api/examples.sh            check every example
#   bash api/examples.sh --print    print what each example prints
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/node" ./cmd/node
# A free port: bind port 0, read it, release it.
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
addr="127.0.0.1:$port"
"$tmp/node" --id n1 --listen "$addr" --data-dir "$tmp/data" >"$tmp/node.log" 2>&1 &
pid=$!

# Wait (at most 15 s) until the node is ready: it leads and has applied its log.
deadline=$((SECONDS + 15))
until "$tmp/node" healthcheck --addr "$addr" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "examples: the node did not become ready; its log:" >&2
    cat "$tmp/node.log" >&2
    exit 1
  fi
  sleep 0.1
done

if ! node api/examples-check.mjs --addr "$addr" "$@"; then
  echo "examples: the node's log:" >&2
  tail -n 50 "$tmp/node.log" >&2
  exit 1
fi
