// A real raftlock cluster for the tests: the node binary built once with
// go build, N processes on 127.0.0.1 free ports with --initial-cluster and
// temporary data directories. Every process is killed when the test
// process ends, also on failure or a signal.
//
// With { tls: true } the nodes run with the TLS flags on certificates made
// by `lockctl certs`, and with tokens (each made by `lockctl token`) with
// --auth-tokens; the harness then speaks https with a token of its own.

import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, closeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tlsAgentOptions } from '../src/tls.js';
import { httpsFetch } from './https-fetch.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const live = new Set();

function killAll() {
  for (const p of live) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { killAll(); process.exit(128 + 2); });
}

/** Builds ./cmd/<name> into dir (go's build cache makes repeats cheap), unless env names a binary. */
function goBinary(dir, name, env) {
  if (process.env[env]) return process.env[env];
  const bin = join(dir, `raftlock-${name}`);
  if (!existsSync(bin)) {
    const go = existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';
    execFileSync(go, ['build', '-o', bin, `./cmd/${name}`], { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return bin;
}

/** The node binary ($RAFTLOCK_NODE_BIN, else built from ./cmd/node). */
export function nodeBinary(dir) { return goBinary(dir, 'node', 'RAFTLOCK_NODE_BIN'); }

/** The lockctl binary ($RAFTLOCK_LOCKCTL_BIN, else built from ./cmd/lockctl). */
export function lockctlBinary(dir) { return goBinary(dir, 'lockctl', 'RAFTLOCK_LOCKCTL_BIN'); }

/** Runs lockctl with args and returns its stdout. */
export function lockctl(bin, args) {
  return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

/**
 * Writes a development CA, a node certificate for 127.0.0.1 and a client
 * certificate into dir with `lockctl certs`; returns the file paths.
 */
export function makeCerts(lockctlBin, dir) {
  lockctl(lockctlBin, ['certs', '--dir', dir, '--hosts', '127.0.0.1,localhost', '--valid', '24h']);
  const f = (n) => join(dir, n);
  return { ca: f('ca.crt'), nodeCert: f('node.crt'), nodeKey: f('node.key'), clientCert: f('client.crt'), clientKey: f('client.key') };
}

/** Free TCP ports on 127.0.0.1 (bound, read, released). */
async function freePorts(n) {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => ok(s));
  })));
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  return ports;
}

/** Polls cond until it returns a truthy value, or fails after ms. */
export async function waitFor(what, cond, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function rpc(addr, path, body = {}, timeoutMs = 2000) {
  const res = await fetch(`http://${addr}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const j = await res.json();
  if (!res.ok) throw Object.assign(new Error(`${path}: ${j.code}: ${j.message}`), { code: j.code });
  return j;
}

export class Cluster {
  /**
   * Starts n nodes and waits until they agree on a leader.
   *
   * @param {number} n
   * @param {object} [o]
   * @param {boolean} [o.tls] run the nodes with TLS (certificates from lockctl certs)
   * @param {string} [o.clientAuth] --tls-client-auth (default: the node's default)
   * @param {{name: string, prefixes?: string[], verbs: string[]}[]} [o.tokens]
   *   tokens for --auth-tokens (needs tls); their secrets end up in
   *   cluster.tokens[name]. The harness adds one of its own.
   */
  static async start(n = 3, o = {}) {
    const c = new Cluster();
    c.dir = mkdtempSync(join(tmpdir(), 'raftlock-js-'));
    c.bin = nodeBinary(c.dir);
    c.extraArgs = [];
    c.scheme = 'http';
    c.fetch = globalThis.fetch;
    c.headers = {};
    c.tokens = {};
    if (o.tls) {
      c.lockctl = lockctlBinary(c.dir);
      c.certs = makeCerts(c.lockctl, join(c.dir, 'certs'));
      c.scheme = 'https';
      c.extraArgs.push('--tls-cert', c.certs.nodeCert, '--tls-key', c.certs.nodeKey, '--tls-ca', c.certs.ca);
      if (o.clientAuth) c.extraArgs.push('--tls-client-auth', o.clientAuth);
      // The harness presents the client certificate (needed under
      // --tls-client-auth require).
      c.fetch = httpsFetch(tlsAgentOptions({ caFile: c.certs.ca, certFile: c.certs.clientCert, keyFile: c.certs.clientKey }));
    }
    if (o.tokens) {
      if (!o.tls) throw new Error('tokens need tls');
      const entries = [];
      for (const t of [...o.tokens, { name: 'test-harness', verbs: ['read', 'admin'] }]) {
        const args = ['--json', 'token', '--name', t.name, '--verbs', t.verbs.join(',')];
        for (const p of t.prefixes ?? []) args.push('--prefix', p);
        const out = JSON.parse(lockctl(c.lockctl, args));
        c.tokens[t.name] = out.token;
        entries.push(out.entry);
      }
      c.tokenFile = join(c.dir, 'tokens.json');
      writeFileSync(c.tokenFile, JSON.stringify({ tokens: entries }, null, 2), { mode: 0o600 });
      c.extraArgs.push('--auth-tokens', c.tokenFile);
      c.headers.authorization = `Bearer ${c.tokens['test-harness']}`;
    }
    const ports = await freePorts(n);
    c.nodes = ports.map((p, i) => ({ id: `n${i + 1}`, addr: `127.0.0.1:${p}`, dataDir: join(c.dir, `n${i + 1}`), log: join(c.dir, `n${i + 1}.log`), proc: null }));
    c.initial = c.nodes.map((x) => `${x.id}=${x.addr}`).join(',');
    for (let i = 0; i < n; i++) c.startNode(i);
    await c.waitLeader();
    return c;
  }

  get endpoints() { return this.nodes.map((x) => `${this.scheme}://${x.addr}`); }

  startNode(i) {
    const x = this.nodes[i];
    const fd = openSync(x.log, 'a');
    x.proc = spawn(this.bin, ['--id', x.id, '--listen', x.addr, '--data-dir', x.dataDir, '--initial-cluster', this.initial, '--log-level', 'info', ...this.extraArgs],
      { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    live.add(x.proc);
    const proc = x.proc;
    proc.on('exit', () => live.delete(proc));
  }

  /** SIGKILLs node i and waits until its process is gone. */
  async kill(i) {
    const p = this.nodes[i].proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
    this.nodes[i].proc = null;
  }

  signal(i, sig) { this.nodes[i].proc.kill(sig); }

  /** Restarts a killed node on its port and data directory. */
  async restart(i) {
    this.startNode(i);
    await this.waitLeader();
  }

  running() { return this.nodes.map((_, i) => i).filter((i) => this.nodes[i].proc); }

  async status(i) { return this.rpc(i, '/raftlock.v1.ClusterService/Status'); }

  /** One Connect JSON call to node i, over TLS with the harness token when the cluster has them. */
  async rpc(i, path, body = {}, timeoutMs = 2000) {
    const res = await this.fetch(`${this.scheme}://${this.nodes[i].addr}${path}`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...this.headers }, body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const j = JSON.parse(await res.text());
    if (!res.ok) throw Object.assign(new Error(`${path}: ${j.code}: ${j.message}`), { code: j.code });
    return j;
  }

  /** Waits until every running node is ready and names the same leader; returns its index. */
  async waitLeader(ms = 20000) {
    return waitFor('a leader every running node agrees on', async () => {
      const sts = await Promise.all(this.running().map((i) => this.status(i)));
      const id = sts[0].leaderId;
      if (!id || !sts.every((s) => s.ready && s.leaderId === id)) return null;
      const leader = this.nodes.findIndex((x) => x.id === id);
      return leader >= 0 && this.nodes[leader].proc ? { index: leader } : null;
    }, ms).then((r) => r.index);
  }

  /** The last lines of every node's log, for failure messages. */
  logs(lines = 30) {
    return this.nodes.map((x) => {
      let text = '';
      try { text = readFileSync(x.log, 'utf8'); } catch { /* no log yet */ }
      return `--- ${x.id} (${x.addr}) ---\n${text.split('\n').slice(-lines).join('\n')}`;
    }).join('\n');
  }

  async stop() {
    for (let i = 0; i < this.nodes.length; i++) {
      const p = this.nodes[i].proc;
      if (p) {
        try { p.kill('SIGCONT'); } catch { /* gone */ }
        await this.kill(i);
      }
    }
    this.fetch.close?.();
    if (process.env.RAFTLOCK_KEEP_TEST_DIRS) return;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
