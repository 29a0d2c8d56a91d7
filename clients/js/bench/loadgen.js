// The acquire -> release loop of raftlock's load tools, for Node.js: the
// contract of internal/loadgen (run.go) restated, so that a run here and a
// run of lockbench measure the same thing and print the same JSON record
// (loadgen.Result), which `lockbench compare` reads.
//
// The loop: each caller takes its key (its own, or one of cfg.keys shared
// keys), releases it, and starts again, until the window ends. A pair
// counts when its release completes inside the window; its acquire and
// release times go into log-linear histograms (hist.js). Errors are counted
// by kind, not fatal; after an error that is not a refusal (the key was
// busy, the wait timed out) the caller pauses 10 ms. A one-second tick ends
// the warm-up, writes the progress line and the timeline, and ends the
// window, as loadgen's does. All callers run in this one process, on its one
// event loop: that is the point (a Medusa app is one such process).

'use strict';

const { readFileSync } = require('node:fs');
const { Histogram, summarize, curve } = require('./hist.js');

const PHASE_WARMUP = 0;
const PHASE_MEASURE = 1;
const PHASE_STOP = 2;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** loadgen's Config.Key: the key of caller i. */
function keyOf(cfg, i) {
  return cfg.keys > 0 ? `${cfg.prefix}k${i % cfg.keys}` : `${cfg.prefix}w${i}`;
}

/** /proc/loadavg's three figures, or undefined where there is none. */
function loadAvg() {
  try {
    return readFileSync('/proc/loadavg', 'utf8').trim().split(/\s+/).slice(0, 3).map(Number);
  } catch {
    return undefined;
  }
}

/** utime+stime of /proc/<pid>/stat in seconds (100 ticks a second, as loadgen assumes); -1 if unreadable. */
function procCPU(pid) {
  let s;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return -1;
  }
  const f = s.slice(s.lastIndexOf(')') + 1).trim().split(/\s+/);
  if (f.length < 13) return -1;
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** The named processes' CPU seconds, then this process's own. */
function cpuTimes(procs) {
  return [...procs.map((p) => procCPU(p.pid)), procCPU('self')];
}

function cpuReport(procs, self, before, after, pairs) {
  const out = [];
  for (let i = 0; i < after.length; i++) {
    if (before[i] < 0 || after[i] < 0) continue;
    const own = i === procs.length;
    const c = { name: own ? self : procs[i].name, pid: own ? process.pid : procs[i].pid, cpu_s: after[i] - before[i] };
    c.cpu_us_per_pair = pairs > 0 ? (c.cpu_s / pairs) * 1e6 : 0;
    if (own) c.client = true;
    out.push(c);
  }
  return out;
}

/** "n1=123,n2=456" to [{name, pid}]. */
function parsePIDs(s) {
  if (!s) return [];
  return s.split(',').map((part) => {
    const [name, v] = part.trim().split('=');
    const pid = Number(v);
    if (!name || !Number.isInteger(pid) || pid <= 0) throw new TypeError(`--pids: "${part}" is not name=pid`);
    return { name, pid };
  });
}

const nowNs = () => performance.now() * 1e6;

/** One caller's records. */
class Worker {
  constructor() {
    this.acquire = new Histogram();
    this.release = new Histogram();
    this.interval = new Histogram(); // acquires since the last progress line
    this.pairs = 0;
    this.errors = new Map();
    this.samples = new Map();
  }

  fail(phase, kind, err) {
    if (phase !== PHASE_MEASURE) return;
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
    if (!this.samples.has(kind)) this.samples.set(kind, String(err?.message ?? err));
  }
}

/**
 * Runs the loop and returns loadgen's Result (the JSON fields it names).
 *
 * @param {object} cfg name, target, callers, keys, prefix, warmupMs, durationMs,
 *   waitMs, expireMs, progress (a write function or null), procs, clientName
 * @param {object} d name; newCaller(i, key) -> {acquire(), release(), close?()};
 *   errorKind(err) -> string; refused(err) -> boolean
 */
async function run(cfg, d) {
  const callers = [];
  for (let i = 0; i < cfg.callers; i++) callers.push(await d.newCaller(i, keyOf(cfg, i)));
  const res = {
    name: cfg.name, target: cfg.target || undefined, driver: d.name,
    started: `${new Date().toISOString().slice(0, 19)}Z`,
    callers: cfg.callers, keys: cfg.keys, expire: cfg.expire, wait: cfg.wait,
    warmup_s: cfg.warmupMs / 1000, duration_s: cfg.durationMs / 1000, load_before: loadAvg(),
    gomaxprocs: 1, // one event loop: the JavaScript of every caller runs on one thread
  };
  let phase = cfg.warmupMs > 0 ? PHASE_WARMUP : PHASE_MEASURE;
  let done = 0; // pairs completed in the window, for the timeline
  const workers = callers.map(() => new Worker());

  const loop = async (c, w) => {
    while (phase !== PHASE_STOP) {
      const t0 = nowNs();
      try {
        await c.acquire();
      } catch (e) {
        w.fail(phase, `acquire:${d.errorKind(e)}`, e);
        if (!d.refused(e)) await sleep(10); // the service is in trouble: do not spin
        continue;
      }
      const t1 = nowNs();
      w.interval.record(t1 - t0);
      try {
        await c.release();
      } catch (e) {
        w.fail(phase, `release:${d.errorKind(e)}`, e);
        continue;
      }
      const t2 = nowNs();
      if (phase === PHASE_MEASURE) {
        w.acquire.record(t1 - t0);
        w.release.record(t2 - t1);
        w.pairs++;
        done++;
      }
    }
  };
  const running = callers.map((c, i) => loop(c, workers[i]));

  const start = performance.now();
  const measureAt = start + cfg.warmupMs;
  let measureStart = start;
  let cpuBefore = phase === PHASE_MEASURE ? cpuTimes(cfg.procs) : null;
  let last = 0;
  const timeline = [];
  let next = start;
  for (;;) {
    next += 1000;
    await sleep(Math.max(0, next - performance.now()));
    const now = performance.now();
    if (phase === PHASE_WARMUP && now >= measureAt) {
      for (const w of workers) w.interval.reset(); // the warm-up's intervals are not part of the window
      measureStart = performance.now();
      cpuBefore = cpuTimes(cfg.procs);
      phase = PHASE_MEASURE;
      last = 0;
      cfg.progress?.(`${cfg.clientName}: ${cfg.name}: warm-up done, measuring for ${cfg.duration}\n`);
      continue;
    }
    const iv = new Histogram();
    let errs = 0;
    for (const w of workers) {
      iv.merge(w.interval);
      w.interval.reset();
      for (const n of w.errors.values()) errs += n;
    }
    if (phase === PHASE_MEASURE) {
      timeline.push(done - last);
      last = done;
    }
    if (cfg.progress) {
      const label = phase === PHASE_MEASURE ? `${((now - measureStart) / 1000).toFixed(0).padStart(3)}s` : 'warm-up';
      const f = (ns, w) => (ns / 1e6).toFixed(2).padStart(w);
      cfg.progress(`${cfg.clientName}: ${cfg.name} ${label.padStart(7)}  ${String(iv.n).padStart(7)} acquires/s  acquire p50 ${f(iv.quantile(0.5), 6)} ms  `
        + `p99 ${f(iv.quantile(0.99), 7)} ms  max ${f(iv.max, 7)} ms  errors ${errs}\n`);
    }
    if (phase === PHASE_MEASURE && now - measureStart >= cfg.durationMs - 10) break;
  }
  phase = PHASE_STOP;
  const elapsedMs = performance.now() - measureStart;
  const cpuAfter = cpuTimes(cfg.procs);
  await Promise.all(running);
  for (const c of callers) await c.close?.();

  const acq = new Histogram();
  const rel = new Histogram();
  res.errors = {};
  res.error_samples = {};
  res.pairs = 0;
  for (const w of workers) {
    acq.merge(w.acquire);
    rel.merge(w.release);
    res.pairs += w.pairs;
    for (const [k, n] of w.errors) {
      res.errors[k] = (res.errors[k] ?? 0) + n;
      if (!(k in res.error_samples)) res.error_samples[k] = w.samples.get(k);
    }
  }
  if (Object.keys(res.error_samples).length === 0) delete res.error_samples;
  res.elapsed_s = elapsedMs / 1000;
  res.pairs_per_s = res.pairs / res.elapsed_s;
  res.acquire = summarize(acq);
  res.release = summarize(rel);
  res.timeline = timeline;
  res.acquire_curve = curve(acq);
  res.load_after = loadAvg();
  res.cpu = cpuReport(cfg.procs, cfg.clientName, cpuBefore, cpuAfter, res.pairs);
  return res;
}

module.exports = { run, keyOf, parsePIDs, loadAvg };
