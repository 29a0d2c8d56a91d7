#!/usr/bin/env bash
# make compare: raftlock and etcd side by side on this machine, the same
# acquire -> release loop per caller, in alternating rounds, written to
# bench/compare.md (medians, ratios, every run) and bench/compare.png.
#
# Both services run as 3 members of real processes on 127.0.0.1 with
# their default durability (fsync on every write; etcd from Debian's
# etcd-server, installed with apt when missing), started once and kept up
# for all rounds. Each round runs every workload once per driver; the
# order of the drivers flips every round, so drift in the machine's load
# and the first-after-idle penalty hit each side alike. The loop is
# internal/loadgen for both: lockbench run drives raftlock through the Go
# client, etcdbench (bench/etcd, a module of its own) drives etcd through
# clientv3's concurrency.Mutex.
#
# Settings (environment):
#   COMPARE_ROUNDS    rounds, each running every workload once per driver (default 3)
#   COMPARE_DURATION  measured time per run (default 10s); COMPARE_WARMUP (default 2s)
#   COMPARE_DRIVERS   drivers in the order of the first round (default "raftlock etcd etcd_leader js"):
#                     etcd_leader is etcd with its client given only the member leading when each run
#                     starts (etcd's client spreads calls over all it is given; raftlock's goes to the leader);
#                     js is the JavaScript provider on the raftlock cluster (clients/js/bench, needs node)
#   COMPARE_BASELINE  the driver the ratios divide by (default etcd, or the first driver when etcd is not run)
#   COMPARE_ONLY      run only the workloads whose name contains this text
#   COMPARE_PROTOCOL  the raftlock client's protocol (default grpc, the client's default)
#   COMPARE_ETCD_TTL  session TTL of each etcd caller, seconds (default 60, as raftlock's expire of 1m)
#   COMPARE_PORT      base port (default 7200): raftlock nodes on +1..+3, etcd clients on +11..+13, etcd peers on +21..+23
#   COMPARE_DIR       data and logs (default data/compare; wiped first)
#   COMPARE_OUT       where compare.md, compare.png and compare.json go (default bench)
#   COMPARE_COMMAND   the command named in the report (default: make compare and these settings)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh

rounds=${COMPARE_ROUNDS:-3}
duration=${COMPARE_DURATION:-10s}
warmup=${COMPARE_WARMUP:-2s}
read -r -a drivers <<<"${COMPARE_DRIVERS:-raftlock etcd etcd_leader js}"
baseline=${COMPARE_BASELINE:-etcd}
case " ${drivers[*]} " in *" $baseline "*) ;; *) [ -n "${COMPARE_BASELINE:-}" ] || baseline=${drivers[0]} ;; esac
protocol=${COMPARE_PROTOCOL:-grpc}
ttl=${COMPARE_ETCD_TTL:-60}
base=${COMPARE_PORT:-7200}
dir=${COMPARE_DIR:-data/compare}
out=${COMPARE_OUT:-bench}
command=${COMPARE_COMMAND:-"make compare (COMPARE_ROUNDS=$rounds COMPARE_DURATION=$duration COMPARE_WARMUP=$warmup COMPARE_PROTOCOL=$protocol COMPARE_ETCD_TTL=$ttl COMPARE_DRIVERS='${drivers[*]}')"}

# The issue's table: name | raftlock's target against etcd | flags.
workloads=(
  "1 caller, own key|>= 2x etcd pairs/s; acquire p50 <= 0.4 ms and <= half of etcd's|--callers 1"
  "16 callers, own keys|>= 2x etcd pairs/s|--callers 16"
  "64 callers, own keys|>= 2x etcd pairs/s; acquire p99 <= etcd's|--callers 64"
  "16 callers, 1 shared key|>= 5x etcd pairs/s|--callers 16 --keys 1 --wait 10s"
)

# ---- Drivers. A driver is a name (in COMPARE_DRIVERS) and three functions:
#   <name>_start                  start what it measures; called once before the rounds (it may start
#                                 another driver's servers: a second client of raftlock calls raftlock_start)
#   <name>_run NAME TARGET FLAGS  one run of a workload: print one loadgen Result as JSON on stdout, with
#                                 "driver": "<name>"; FLAGS are --callers C [--keys K --wait W]
#   <name>_stop                   stop what <name>_start started; called on exit, whatever happens
# Every run gets --duration, --warmup and --pids from common_flags.

common_flags() { echo "--duration $duration --warmup $warmup --json --quiet"; }

# raftlock: 3 nodes of scripts/cluster.sh on base+1..+3.
export RAFTLOCK_CLUSTER_PORT=$base
export RAFTLOCK_CLUSTER_DIR=$dir/raftlock
export RAFTLOCK_CLUSTER_BIN=bin/bench/node
raftlock_started=
raftlock_start() {
  [ -z "$raftlock_started" ] || return 0
  bench_ports_free COMPARE_PORT
  raftlock_started=1
  scripts/cluster.sh start
}
raftlock_run() {
  local name=$1 target=$2
  shift 2
  # shellcheck disable=SC2046 # common_flags are words
  bin/bench/lockbench run --endpoints "$(bench_endpoints)" --driver raftlock --protocol "$protocol" \
    --name "$name" --target "$target" --pids "$(bench_pids)" $(common_flags) "$@"
}
raftlock_stop() { [ -z "$raftlock_started" ] || { scripts/cluster.sh stop; raftlock_started=; }; }

# js: the JavaScript provider on the same raftlock cluster, every caller in
# one Node.js process (clients/js/bench/run.js, jsbench: the same loop and
# result as lockbench's, through RaftlockLockingProvider.acquire/release).
js_start() { command -v node >/dev/null || { echo "the js driver needs node (Node.js 20)" >&2; return 1; }; raftlock_start; }
js_run() {
  local name=$1 target=$2
  shift 2
  # The targets are raftlock's against etcd; the provider's are against the Go client (issue 21).
  : "$target"
  case "$name" in
    *"own key"*) target="pairs/s >= 0.8x raftlock's (the Go client); acquire p50 <= raftlock's + 0.2 ms" ;;
    *) target="" ;;
  esac
  # shellcheck disable=SC2046 # common_flags are words
  node clients/js/bench/run.js --endpoints "$(bench_endpoints)" --driver js --name "$name" --target "$target" \
    --pids "$(bench_pids)" $(common_flags) "$@"
}
js_stop() { raftlock_stop; }

# etcd: 3 members e1-e3, clients on base+11..+13, peers on base+21..+23.
etcd_dir=$dir/etcd
etcd_client() { echo "127.0.0.1:$((base + 10 + $1))"; }
etcd_peer() { echo "http://127.0.0.1:$((base + 20 + $1))"; }
etcd_endpoints() { echo "$(etcd_client 1),$(etcd_client 2),$(etcd_client 3)"; }
etcd_started=
etcd_start() {
  [ -z "$etcd_started" ] || return 0
  etcd_install
  local i cluster="e1=$(etcd_peer 1),e2=$(etcd_peer 2),e3=$(etcd_peer 3)"
  for i in 1 2 3; do
    if curl -s -o /dev/null --max-time 2 "http://$(etcd_client "$i")/health"; then
      echo "port of etcd member e$i ($(etcd_client "$i")) is in use: stop what runs there, or set COMPARE_PORT" >&2
      return 1
    fi
  done
  etcd_started=1
  for i in 1 2 3; do
    mkdir -p "$etcd_dir/e$i"
    # Defaults otherwise: the WAL is fsynced on every write.
    nohup etcd --name "e$i" --data-dir "$etcd_dir/e$i/data" \
      --listen-client-urls "http://$(etcd_client "$i")" --advertise-client-urls "http://$(etcd_client "$i")" \
      --listen-peer-urls "$(etcd_peer "$i")" --initial-advertise-peer-urls "$(etcd_peer "$i")" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token raftlock-compare \
      --logger zap --log-outputs stderr --log-level warn >>"$etcd_dir/e$i/etcd.log" 2>&1 &
    echo $! >"$etcd_dir/e$i/pid"
    echo "etcd e$i started on $(etcd_client "$i") (pid $!, log $etcd_dir/e$i/etcd.log)"
  done
  for _ in $(seq 150); do
    if etcdctl --endpoints "$(etcd_endpoints)" endpoint health >/dev/null 2>&1; then
      echo "etcd ready: $(etcd --version | head -1)"
      return 0
    fi
    sleep 0.1
  done
  echo "etcd not healthy after 15s; see $etcd_dir/eX/etcd.log" >&2
  return 1
}
# etcd_run_on DRIVER ENDPOINTS NAME TARGET FLAGS: one etcdbench run.
etcd_run_on() {
  local driver=$1 eps=$2 name=$3 target=$4 pids
  shift 4
  pids="e1=$(cat "$etcd_dir/e1/pid"),e2=$(cat "$etcd_dir/e2/pid"),e3=$(cat "$etcd_dir/e3/pid")"
  # shellcheck disable=SC2046 # common_flags are words
  # The targets are raftlock's: not copied into etcd's results.
  : "$target"
  bin/bench/etcdbench --endpoints "$eps" --driver "$driver" --ttl "$ttl" \
    --name "$name" --pids "$pids" $(common_flags) "$@"
}
etcd_run() { etcd_run_on etcd "$(etcd_endpoints)" "$@"; }
etcd_stop() {
  [ -n "$etcd_started" ] || return 0
  local i pid
  for i in 1 2 3; do
    [ -f "$etcd_dir/e$i/pid" ] || continue
    pid=$(cat "$etcd_dir/e$i/pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$etcd_dir/e$i/pid"
  done
  etcd_started=
  echo "etcd stopped"
}
# etcd_install installs Debian's etcd-server and etcd-client when etcd is
# missing (as root; apt's lock may be held by another session: retry).
etcd_install() {
  command -v etcd >/dev/null && command -v etcdctl >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "etcd is not installed: apt-get install etcd-server etcd-client (as root), then run again" >&2
    return 1
  fi
  local try
  for try in 1 2 3 4 5 6; do
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null 2>&1; }; then
      echo "installed $(etcd --version | head -1)"
      return 0
    fi
    echo "apt-get install etcd-server etcd-client failed (try $try; another apt may hold the lock)" >&2
    sleep 5
  done
  return 1
}

# etcd_leader: the same etcd cluster, the client given only the member that
# leads when the run starts (etcdctl's simple format: endpoint, id,
# version, db size, is leader, ...).
etcd_leader_start() { etcd_start; }
etcd_leader_run() {
  local leader
  leader=$(etcdctl --endpoints "$(etcd_endpoints)" endpoint status | awk -F', ' '$5 == "true" { print $1 }')
  [ -n "$leader" ] || { echo "etcd has no leader" >&2; return 1; }
  etcd_run_on etcd_leader "$leader" "$@"
}
etcd_leader_stop() { etcd_stop; }

# ---- The run.
for d in "${drivers[@]}"; do
  declare -F "${d}_run" >/dev/null || { echo "COMPARE_DRIVERS: no driver $d (no ${d}_run function)" >&2; exit 2; }
done
mkdir -p "$out"
bench_build
case " ${drivers[*]} " in *" etcd"*) (cd bench/etcd && CGO_ENABLED=0 ${GO:-go} build -o ../../bin/bench/etcdbench .) ;; esac
rm -rf "$dir"
mkdir -p "$dir"
stop_all() {
  local d
  for d in "${drivers[@]}"; do "${d}_stop" || true; done
}
trap stop_all EXIT
for d in "${drivers[@]}"; do "${d}_start"; done

raw=$dir/results.json
: >"$raw"
echo "load before the runs: $(cat /proc/loadavg 2>/dev/null || echo unknown)"
for r in $(seq "$rounds"); do
  order=("${drivers[@]}")
  if [ $((r % 2)) = 0 ]; then # every other round the other way round
    order=()
    for ((i = ${#drivers[@]} - 1; i >= 0; i--)); do order+=("${drivers[i]}"); done
  fi
  for w in "${workloads[@]}"; do
    IFS='|' read -r name target flags <<<"$w"
    case "$name" in *"${COMPARE_ONLY:-}"*) ;; *) continue ;; esac
    for d in "${order[@]}"; do
      echo "== round $r of $rounds: $name: $d (load $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo ?))"
      # shellcheck disable=SC2086 # flags are words
      "${d}_run" "$name" "$target" $flags >>"$raw"
    done
  done
done
cp "$raw" "$out/compare.json"
versus=
case " ${drivers[*]} " in *" js "*) case " ${drivers[*]} " in *" raftlock "*) versus=js=raftlock ;; esac ;; esac
bin/bench/lockbench compare --baseline "$baseline" --drivers "${drivers[*]}" --versus "$versus" --command "$command" \
  --out "$out/compare.md" --plot "$out/compare.png" "$out/compare.json"
cat "$out/compare.md"
