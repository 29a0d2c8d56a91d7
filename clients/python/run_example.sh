#!/usr/bin/env bash
# Runs clients/python/example.py against a real node built from ./cmd/node
# (started on a free port, stopped on exit). Exits non-zero if the example
# finds anything off.
set -euo pipefail
cd "$(dirname "$0")/../.."
. api/testnode.sh
start_node
if ! RAFTLOCK_URL="http://$NODE_ADDR" python3 clients/python/example.py; then
  echo "python example failed; the node's log:" >&2
  tail -n 50 "$NODE_LOG" >&2
  exit 1
fi
