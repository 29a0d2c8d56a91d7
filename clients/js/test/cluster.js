// A real raftlock cluster for the tests: the node binary built once with
// go build, N processes on 127.0.0.1 free ports with --initial-cluster and
// temporary data directories. Every process is killed when the test
// process ends, also on failure or a signal.

import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** Builds ./cmd/node once per test process (go's build cache makes repeats cheap). */
export function nodeBinary(dir) {
  if (process.env.RAFTLOCK_NODE_BIN) return process.env.RAFTLOCK_NODE_BIN;
  const bin = join(dir, 'raftlock-node');
  if (!existsSync(bin)) {
    const go = existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';
    execFileSync(go, ['build', '-o', bin, './cmd/node'], { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return bin;
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
  /** Starts n nodes and waits until they agree on a leader. */
  static async start(n = 3) {
    const c = new Cluster();
    c.dir = mkdtempSync(join(tmpdir(), 'raftlock-js-'));
    c.bin = nodeBinary(c.dir);
    const ports = await freePorts(n);
    c.nodes = ports.map((p, i) => ({ id: `n${i + 1}`, addr: `127.0.0.1:${p}`, dataDir: join(c.dir, `n${i + 1}`), log: join(c.dir, `n${i + 1}.log`), proc: null }));
    c.initial = c.nodes.map((x) => `${x.id}=${x.addr}`).join(',');
    for (let i = 0; i < n; i++) c.startNode(i);
    await c.waitLeader();
    return c;
  }

  get endpoints() { return this.nodes.map((x) => `http://${x.addr}`); }

  startNode(i) {
    const x = this.nodes[i];
    const fd = openSync(x.log, 'a');
    x.proc = spawn(this.bin, ['--id', x.id, '--listen', x.addr, '--data-dir', x.dataDir, '--initial-cluster', this.initial, '--log-level', 'info'],
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

  async status(i) { return rpc(this.nodes[i].addr, '/raftlock.v1.ClusterService/Status'); }

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
    if (process.env.RAFTLOCK_KEEP_TEST_DIRS) return;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
