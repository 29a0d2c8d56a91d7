#!/usr/bin/env node
// jsbench: the load tool of the JavaScript provider. It runs lockbench's
// acquire -> release loop (cmd/lockbench, internal/loadgen) with every
// caller in this one Node.js process, through the package's public API,
// and prints the same result: a progress line per second on stderr, a
// summary (or with --json the loadgen Result as one JSON object) on stdout.
//
//   node clients/js/bench/run.js --endpoints 127.0.0.1:7071,... --callers 16 [--keys 1 --wait 10s] [--json]
//
// --api says which calls a caller makes (each caller i has owner
// "lockbench-<i>", locks living --expire, 1m by default, as lockbench's):
//   provider  (default) RaftlockLockingProvider.acquire(key, { ownerId, expire, awaitQueue, timeout })
//             then .release(key, { ownerId }): the Locking Module's acquire/release, with the
//             provider's per-key order; one provider for all callers
//   client    RaftlockClient.acquire(key, { ownerId, expire, waitTimeout }) then release with the
//             fencing token, no order: what lockbench's Go caller does
//   execute   RaftlockLockingProvider.execute(key, job, { timeout, expire }) with a job that
//             returns at once; acquire time is until the job starts, release time from its end
//             until execute returns (owner and lease renewal are execute's own)
// --wait auto is lockbench's: 0 (fail at once) with own keys, 5s with shared keys. The provider's
// awaitQueue timeout is at least 1 s (the Locking Module's rule), so --wait between 0 and 1s
// waits 1 s there. Calls are bounded by the client's own timeouts (requestTimeout 5 s beyond
// the wait, retryTimeout 15 s), not by loadgen's wait + 30 s: the provider's API takes no signal.
//
// Exit status: 0 on success, 1 when no pair completed or the cluster could
// not be reached, 2 on a usage error.

'use strict';

const { resolve } = require('node:path');
const { run, parsePIDs } = require('./loadgen.js');

const USAGE = `usage: node clients/js/bench/run.js [flags]
  --endpoints H:P,...  cluster nodes (env RAFTLOCK_ENDPOINTS; default 127.0.0.1:7070)
  --api A              provider (default), client or execute
  --callers C          concurrent callers (default 16)
  --keys K             shared keys; 0 (default): every caller has its own
  --duration D         how long to measure (default 10s)
  --warmup D           how long to run before measuring (default 2s)
  --expire D           time to live of each lock (default 1m; 0: never expires)
  --wait D|auto        wait timeout of each acquire (default auto: 0 with own keys, 5s with shared)
  --prefix P           key prefix (default lockbench/<random>/)
  --name N, --target T, --driver D (default js)   copied into the result
  --pids name=pid,...  report these processes' CPU time per pair
  --package DIR        the package to measure (default: this checkout's clients/js), e.g. another revision's
  --json               print the result as JSON on stdout
  --quiet              no progress line`;

class UsageError extends Error {}

/** Go's time.ParseDuration for the units a command line uses, in ms. */
function parseDuration(s, flag) {
  if (s === '0') return 0;
  const unit = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let m;
  let end = 0;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * unit[m[2]];
    end = re.lastIndex;
  }
  if (s === '' || end !== s.length) throw new UsageError(`${flag} ${JSON.stringify(s)}: want a duration such as 10s, 500ms or 1m`);
  return total;
}

/** Go's time.Duration.String for a whole number of nanoseconds given in ms ("1m0s", "10s", "500ms", "0s"). */
function formatDuration(msVal) {
  const ns = Math.round(msVal * 1e6);
  if (ns === 0) return '0s';
  const trim = (v) => String(Number(v.toFixed(9)));
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${trim(ns / 1e3)}µs`;
  if (ns < 1e9) return `${trim(ns / 1e6)}ms`;
  const h = Math.floor(ns / 3.6e12);
  const m = Math.floor((ns % 3.6e12) / 6e10);
  const s = `${trim((ns % 6e10) / 1e9)}s`;
  if (h > 0) return `${h}h${m}m${s}`;
  return m > 0 ? `${m}m${s}` : s;
}

function parseArgs(argv) {
  const o = {
    endpoints: process.env.RAFTLOCK_ENDPOINTS || '127.0.0.1:7070', api: 'provider', callers: 16, keys: 0,
    duration: '10s', warmup: '2s', expire: '1m', wait: 'auto', prefix: '', name: '', target: '', driver: 'js',
    pids: '', package: '', json: false, quiet: false,
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === '-h' || a === '--help') return null;
    if (!a.startsWith('-')) throw new UsageError(`unexpected argument ${JSON.stringify(a)}`);
    a = a.replace(/^--?/, '');
    let v;
    const eq = a.indexOf('=');
    if (eq >= 0) [a, v] = [a.slice(0, eq), a.slice(eq + 1)];
    if (!(a in o)) throw new UsageError(`flag provided but not defined: -${a}`);
    if (typeof o[a] === 'boolean') {
      o[a] = v === undefined ? true : v === 'true';
      continue;
    }
    if (v === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${a}`);
      v = argv[++i];
    }
    o[a] = typeof o[a] === 'number' ? Number(v) : v;
  }
  if (!Number.isInteger(o.callers) || o.callers < 1) throw new UsageError('--callers must be an integer of at least 1');
  if (!Number.isInteger(o.keys) || o.keys < 0) throw new UsageError('--keys must be a non-negative integer');
  if (!['provider', 'client', 'execute'].includes(o.api)) throw new UsageError(`--api ${JSON.stringify(o.api)}: want provider, client or execute`);
  o.durationMs = parseDuration(o.duration, '--duration');
  if (!(o.durationMs > 0)) throw new UsageError('--duration must be positive');
  o.warmupMs = parseDuration(o.warmup, '--warmup');
  o.expireMs = parseDuration(o.expire, '--expire');
  o.waitMs = o.wait === 'auto' ? (o.keys > 0 ? 5000 : 0) : parseDuration(o.wait, '--wait');
  o.procs = parsePIDs(o.pids);
  return o;
}

/** lockbench's describe: "16 callers, own keys", "16 callers, 1 shared key". */
function describe(callers, keys) {
  const plural = (n, w) => (n === 1 ? `1 ${w}` : `${n} ${w}s`);
  const c = plural(callers, 'caller');
  if (keys === 0) return callers === 1 ? `${c}, own key` : `${c}, own keys`;
  return `${c}, ${plural(keys, 'shared key')}`;
}

/** The callers of each --api over one provider or client of the package lib. */
function makeDriver(lib, o, provider, client) {
  const { RaftlockError, Code } = lib;
  // Names an error for the counts, as lockbench's errorKind does.
  const errorKind = (e) => {
    if (!(e instanceof RaftlockError)) return 'error';
    switch (e.code) {
      case Code.Aborted: return 'lock_held';
      case Code.DeadlineExceeded: return 'wait_timeout';
      case Code.FailedPrecondition: return 'not_held';
      default: return e.code;
    }
  };
  const refused = (e) => e instanceof RaftlockError && (e.code === Code.Aborted || e.code === Code.DeadlineExceeded);
  const notHeld = (key) => new RaftlockError(Code.FailedPrecondition, `release of ${JSON.stringify(key)}: not held`);
  const expire = o.expireMs / 1000;
  const waitS = o.waitMs / 1000;
  const newCaller = (i, key) => {
    const ownerId = `lockbench-${i}`;
    switch (o.api) {
      case 'provider': {
        const acq = { ownerId, expire: expire || undefined, awaitQueue: o.waitMs > 0, timeout: waitS };
        const rel = { ownerId };
        return {
          acquire: () => provider.acquire(key, acq),
          release: async () => { if (!(await provider.release(key, rel))) throw notHeld(key); },
        };
      }
      case 'client': {
        const acq = { ownerId, expire: expire || undefined, waitTimeout: waitS };
        let token;
        return {
          acquire: async () => { token = (await client.acquire(key, acq)).fencingToken; },
          release: async () => { if (!(await client.release(key, { ownerId, fencingToken: token }))) throw notHeld(key); },
        };
      }
      default: { // execute: the job's start and end split the call into acquire and release
        const args = { timeout: waitS, expire };
        let jobRan, execution;
        return {
          acquire: () => new Promise((resolve, reject) => {
            jobRan = null;
            execution = provider.execute(key, () => { resolve(); return new Promise((r) => { jobRan = r; }); }, args);
            execution.catch(reject);
          }),
          release: () => { jobRan(); return execution; },
        };
      }
    }
  };
  return { name: o.driver, newCaller, errorKind, refused };
}

/** How the package sends its calls: its own HTTP/1.1 pool, or fetch (before it had one). */
function protocolOf(client) {
  return `connect-json over HTTP/1.1 (${client.transport.pool ? 'keep-alive connection pool' : 'fetch'})`;
}

function recipe(o) {
  const wait = o.waitMs > 0 ? `wait up to ${o.wait}` : 'wait 0 (fail at once if busy)';
  const expire = formatDuration(o.expireMs);
  const head = `JavaScript provider (@raftlock/locking, ${o.package || 'clients/js'}) on Node.js ${process.version}, all callers in one process `
    + `(one event loop), ${protocolOf(o.client)}; endpoints: all nodes (it finds the leader from the first answer); per pair: `;
  switch (o.api) {
    case 'provider':
      return `${head}one RaftlockLockingProvider for all callers (its per-key order on); `
        + `provider.acquire(key, { ownerId: "lockbench-<i>", expire: ${expire}, ${o.waitMs > 0 ? `awaitQueue: true, timeout: ${Math.max(1, o.waitMs / 1000)}s` : 'no awaitQueue'} }) (${wait}), `
        + 'then provider.release(key, { ownerId })';
    case 'client':
      return `${head}one RaftlockClient for all callers (no order); client.acquire(key, { ownerId: "lockbench-<i>", expire: ${expire}, waitTimeout }) (${wait}), `
        + 'then client.release(key, { ownerId, fencingToken })';
    default:
      return `${head}one RaftlockLockingProvider for all callers; provider.execute(key, job, { timeout: ${Math.max(1, o.waitMs / 1000)}s, expire: ${expire} }) `
        + 'with a job that returns at once (acquire: until the job starts; release: from its end until execute returns)';
  }
}

/** ClusterService/Status of the cluster, through the client's transport. */
async function status(client) {
  const { msg } = await client.transport.call('/raftlock.v1.ClusterService/Status', {}, { signal: AbortSignal.timeout(5000) });
  return msg;
}

async function waitReady(client, withinMs) {
  const deadline = Date.now() + withinMs;
  let last;
  for (;;) {
    try {
      if ((await status(client)).leaderAddress) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`cluster not ready within ${withinMs / 1000}s: ${last?.message ?? 'no leader known'}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function printResult(write, r) {
  const mode = r.keys > 0 ? `${r.keys === 1 ? '1 shared key' : `${r.keys} shared keys`}, wait ${r.wait}` : 'own keys';
  const f = (v) => v.toFixed(3);
  write(`workload   ${r.name} (${r.callers} callers, ${mode}, ${r.protocol}, expire ${r.expire})\n`);
  write(`measured   ${r.elapsed_s.toFixed(2)}s after ${r.warmup_s.toFixed(0)}s warm-up; load before ${JSON.stringify(r.load_before)} after ${JSON.stringify(r.load_after)}\n`);
  write(`pairs/s    ${r.pairs_per_s.toFixed(0)} (${r.pairs} acquire -> release pairs)\n`);
  for (const [name, s] of [['acquire', r.acquire], ['release', r.release]]) {
    write(`${name.padEnd(10)} p50 ${f(s.p50_ms)} ms  p90 ${f(s.p90_ms)} ms  p99 ${f(s.p99_ms)} ms  p99.9 ${f(s.p999_ms)} ms  max ${f(s.max_ms)} ms  (mean ${f(s.mean_ms)} ms)\n`);
  }
  if (r.cpu.length > 0) write(`cpu/pair   ${r.cpu.map((c) => `${c.name} ${c.cpu_us_per_pair.toFixed(0)} µs`).join(', ')}\n`);
  const kinds = Object.keys(r.errors).sort();
  if (kinds.length === 0) write('errors     none\n');
  for (const k of kinds) write(`errors     ${k} ${r.errors[k]} (first: ${r.error_samples[k]})\n`);
}

async function main(argv) {
  let o;
  try {
    o = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`jsbench: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  if (o === null) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const lib = require(o.package ? resolve(o.package) : '../index.js');
  const endpoints = o.endpoints.split(',').map((e) => e.trim()).filter(Boolean);
  const provider = o.api === 'client' ? null : new lib.RaftlockLockingProvider({ endpoints });
  const client = provider?.client ?? new lib.RaftlockClient({ endpoints });
  try {
    await waitReady(client, 30000);
    const res = await run({
      name: o.name || describe(o.callers, o.keys), target: o.target, callers: o.callers, keys: o.keys,
      prefix: o.prefix || `lockbench/${process.hrtime.bigint()}/`, warmupMs: o.warmupMs, durationMs: o.durationMs,
      duration: formatDuration(o.durationMs), expire: formatDuration(o.expireMs), wait: formatDuration(o.waitMs),
      procs: o.procs, clientName: 'jsbench', progress: o.quiet ? null : (s) => process.stderr.write(s),
    }, makeDriver(lib, o, provider, client));
    // Field order as loadgen.Result's.
    const out = {
      name: res.name, target: res.target, driver: res.driver, recipe: recipe({ ...o, client }), started: res.started, endpoints,
      protocol: protocolOf(client), ...res,
    };
    try {
      const st = await status(client);
      out.leader = st.leaderId;
      for (const c of out.cpu) if (c.name === st.leaderId) c.name += ' (leader)';
    } catch {
      // no leader to name
    }
    if (o.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    else printResult((s) => process.stdout.write(s), out);
    if (out.pairs === 0) {
      process.stderr.write('jsbench: no acquire -> release pair completed\n');
      return 1;
    }
    return 0;
  } catch (e) {
    process.stderr.write(`jsbench: ${e?.message ?? e}\n`);
    return 1;
  } finally {
    if (provider) await provider.shutdown();
    else await client.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}

module.exports = { main, parseArgs, parseDuration, formatDuration, describe };
