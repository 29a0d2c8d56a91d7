#!/usr/bin/env bash
# Runs every example of api/README.md against a real node and checks what
# each prints (api/examples-check.mjs says how). The node is built from
# ./cmd/node, started on a free port with a temporary data directory, and
# stopped on exit, also on failure (api/testnode.sh).
#
#   bash api/examples.sh            check every example
#   bash api/examples.sh --print    print what each example prints
set -euo pipefail
cd "$(dirname "$0")/.."
. api/testnode.sh
start_node
if ! node api/examples-check.mjs --addr "$NODE_ADDR" "$@"; then
  echo "examples: the node's log:" >&2
  tail -n 50 "$NODE_LOG" >&2
  exit 1
fi
