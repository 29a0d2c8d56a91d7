#!/usr/bin/env node
// The HTTP clients Node.js offers, side by side, for raftlock's calls: the
// measurement behind clients/js/DESIGN.md's "The HTTP path". Every caller
// loops Acquire -> Release (Connect JSON, its own key, the leader only)
// through one client; the variants run one after the other, in alternating
// order over the rounds, and a table of median pairs/s, acquire p50 and
// this process's CPU time per pair is printed.
//
//   node clients/js/bench/http.js --endpoints 127.0.0.1:7071,... [--callers 1,16,64] [--duration 3] [--rounds 2]
//
// Variants: fetch (with an AbortSignal.any and AbortSignal.timeout per
// call, as the client did before), fetch-nosignal, http (node:http with a
// keep-alive Agent), h2 (node:http2, one h2c session), pool (the client's
// own src/http1.js).

'use strict';

const http = require('node:http');
const http2 = require('node:http2');
const { randomUUID } = require('node:crypto');
const { Pool } = require('../src/http1.js');

const H = { 'content-type': 'application/json', 'connect-protocol-version': '1' };

function parse(res, text) {
  if (res !== 200) throw new Error(`HTTP ${res}: ${text}`);
  return JSON.parse(text);
}

/** One send(path, body) -> answer per variant, for the leader at base. */
const VARIANTS = {
  fetch: (base) => async (path, body) => {
    const signal = AbortSignal.any([new AbortController().signal, AbortSignal.timeout(5000)]);
    const r = await fetch(base + path, { method: 'POST', headers: H, body, signal });
    return parse(r.status, await r.text());
  },
  'fetch-nosignal': (base) => async (path, body) => {
    const r = await fetch(base + path, { method: 'POST', headers: H, body });
    return parse(r.status, await r.text());
  },
  http: (base) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, scheduling: 'lifo' });
    const u = new URL(base);
    return (path, body) => new Promise((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path, method: 'POST', agent, headers: { ...H, 'content-length': Buffer.byteLength(body) } }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => { try { resolve(parse(res.statusCode, Buffer.concat(chunks).toString())); } catch (e) { reject(e); } });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  },
  h2: (base) => {
    const session = http2.connect(base);
    return (path, body) => new Promise((resolve, reject) => {
      const st = session.request({ ':method': 'POST', ':path': path, ...H });
      let status = 0;
      const chunks = [];
      st.on('response', (h) => { status = h[':status']; });
      st.on('data', (c) => chunks.push(c));
      st.on('end', () => { try { resolve(parse(status, Buffer.concat(chunks).toString())); } catch (e) { reject(e); } });
      st.on('error', reject);
      st.end(body);
    });
  },
  pool: (base) => {
    const pool = new Pool({ headers: 'connect-protocol-version: 1\r\n' });
    return async (path, body) => {
      const a = await pool.request(base, path, 'application/json', body, 5000, { cancel: null });
      return parse(a.status, a.body.toString());
    };
  },
};

const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[(s.length - 1) >> 1]; };

async function measure(variant, base, callers, durationMs) {
  const send = VARIANTS[variant](base);
  const lat = [];
  let pairs = 0;
  let stop = false;
  let measuring = false;
  const loop = async (i) => {
    const key = `httpbench/${process.pid}/${variant}/${i}`;
    const owner = `o${i}`;
    while (!stop) {
      const t0 = performance.now();
      const a = await send('/raftlock.v1.LockService/Acquire', JSON.stringify({ keys: [key], ownerId: owner, expire: '60s', requestId: randomUUID() }));
      const t1 = performance.now();
      await send('/raftlock.v1.LockService/Release', JSON.stringify({ keys: [key], ownerId: owner, requestId: randomUUID(), fencingToken: a.fencingToken }));
      if (measuring && !stop) {
        pairs++;
        lat.push(t1 - t0);
      }
    }
  };
  const running = Array.from({ length: callers }, (_, i) => loop(i));
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  measuring = true;
  const c0 = cpuMs();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  stop = true;
  const elapsed = performance.now() - t0;
  const c1 = cpuMs();
  await Promise.all(running);
  return { pairsPerSec: (pairs / elapsed) * 1000, p50: median(lat), cpuUsPerPair: ((c1 - c0) / pairs) * 1000 };
}

async function leaderOf(endpoints) {
  for (const e of endpoints) {
    try {
      const r = await fetch(`http://${e}/raftlock.v1.ClusterService/Status`, { method: 'POST', headers: H, body: '{}', signal: AbortSignal.timeout(2000) });
      const st = await r.json();
      if (st.leaderAddress) return `http://${st.leaderAddress}`;
    } catch {
      // try the next
    }
  }
  throw new Error('no node names a leader');
}

async function main() {
  const args = Object.fromEntries(process.argv.slice(2).join(' ').split('--').filter(Boolean).map((a) => a.trim().split(/\s+/)));
  const endpoints = (args.endpoints ?? process.env.RAFTLOCK_ENDPOINTS ?? '127.0.0.1:7070').split(',');
  const callers = (args.callers ?? '1,16,64').split(',').map(Number);
  const durationMs = Number(args.duration ?? 3) * 1000;
  const rounds = Number(args.rounds ?? 2);
  const variants = (args.variants ?? Object.keys(VARIANTS).join(',')).split(',');
  const base = await leaderOf(endpoints);
  const results = new Map();
  const load = () => require('node:fs').readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  process.stderr.write(`leader ${base}; load ${load()}\n`);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    for (const c of callers) {
      for (const v of order) {
        const m = await measure(v, base, c, durationMs);
        process.stderr.write(`round ${r + 1} ${v} ${c} callers: ${m.pairsPerSec.toFixed(0)} pairs/s, p50 ${m.p50.toFixed(2)} ms, ${m.cpuUsPerPair.toFixed(0)} µs CPU/pair (load ${load()})\n`);
        const k = `${v}|${c}`;
        if (!results.has(k)) results.set(k, []);
        results.get(k).push(m);
      }
    }
  }
  console.log(`| HTTP client | ${callers.map((c) => `${c} caller${c === 1 ? '' : 's'}: pairs/s, p50 ms, CPU µs/pair`).join(' | ')} |`);
  console.log(`| --- | ${callers.map(() => '---:').join(' | ')} |`);
  for (const v of variants) {
    const cells = callers.map((c) => {
      const ms = results.get(`${v}|${c}`);
      return `${median(ms.map((m) => m.pairsPerSec)).toFixed(0)}, ${median(ms.map((m) => m.p50)).toFixed(2)}, ${median(ms.map((m) => m.cpuUsPerPair)).toFixed(0)}`;
    });
    console.log(`| ${v} | ${cells.join(' | ')} |`);
  }
  process.exit(0); // the h2 sessions and agents would keep the process alive
}

main().catch((e) => { console.error(e); process.exit(1); });
