// Faults against a real 3-node cluster: the leader SIGKILLed while jobs
// hold a key, and leases lost while a job runs.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, rpc, waitFor } from './cluster.js';
import { LockLostError, RaftlockClient, RaftlockLockingProvider } from '../index.mjs';

let cluster, inspect;

before(async () => {
  cluster = await Cluster.start(3);
  inspect = new RaftlockClient({ endpoints: cluster.endpoints });
});

after(async () => {
  await inspect?.close();
  await cluster?.stop();
});

async function withLogs(fn) {
  try {
    return await fn();
  } catch (e) {
    e.message += `\n${cluster.logs(40)}`;
    throw e;
  }
}

describe('faults', () => {
  // SIGKILL the leader while a job holds the key: every execute still runs
  // exactly once, never two at a time, and fencing tokens increase in the
  // order the jobs ran.
  it('survives a leader kill during execute with no double holder', () => withLogs(async () => {
    const leader = await cluster.waitLeader();
    // Two processes; each lists the leader first, so the kill hits the
    // node they are talking to.
    const order = [leader, ...[0, 1, 2].filter((i) => i !== leader)].map((i) => cluster.endpoints[i]);
    const a = new RaftlockLockingProvider({}, { endpoints: order, requestTimeout: 2000 });
    const b = new RaftlockLockingProvider({}, { endpoints: [order[0], order[2], order[1]], requestTimeout: 2000 });
    let inside = 0;
    let overlaps = 0;
    let started = 0;
    const tokens = [];
    let killed = null;
    const job = async (signal, lease) => {
      if (++inside > 1) overlaps++;
      tokens.push(lease.fencingToken);
      started++;
      try {
        if (started === 3) {
          // Kill the leader while this job holds the key, and keep holding
          // until a new leader is in office: release and renewal must then
          // go through the failover.
          killed = leader;
          await cluster.kill(leader);
          await cluster.waitLeader();
        }
        await sleep(20);
        assert.equal(signal.aborted, false, 'the lease must survive the failover');
        return lease.fencingToken;
      } finally {
        inside--;
      }
    };
    try {
      const n = 12;
      const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => (i % 2 ? b : a).execute('kill_key', job, { timeout: 30 })));
      const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
      assert.deepEqual(failed, [], 'every execute completes');
      assert.equal(killed, leader, 'the leader was killed during a job');
      assert.equal(overlaps, 0, 'two jobs held the key at once');
      assert.equal(tokens.length, n);
      for (let i = 1; i < tokens.length; i++) {
        assert.ok(tokens[i] > tokens[i - 1], `fencing tokens must increase in grant order: ${tokens.join(', ')}`);
      }
      assert.equal(await inspect.getLock('kill_key'), null);
    } finally {
      await a.shutdown();
      await b.shutdown();
      if (killed !== null) await cluster.restart(killed);
    }
  }));

  // A lock taken away (here by an administrative ForceRelease) is noticed
  // at the next renewal: the signal aborts and execute says the lock was
  // lost.
  it('aborts the signal when a refresh is refused', () => withLogs(async () => {
    const c = new RaftlockClient({ endpoints: cluster.endpoints });
    try {
      let reason = null;
      const exec = c.execute('forced_key', async (signal) => {
        await inspect.getLock('forced_key');
        await rpc(cluster.nodes[0].addr, '/raftlock.v1.LockService/ForceRelease', { keys: ['forced_key'] });
        await waitFor('the signal to abort', () => signal.aborted, 10000);
        reason = signal.reason;
        return 'finished';
      }, { expire: 1.5 });
      await assert.rejects(exec, (e) => e instanceof LockLostError && /^Lost the lock on key .*: the refresh was refused/.test(e.message) && e.cause?.code === 'failed_precondition');
      assert.ok(reason instanceof LockLostError);
    } finally {
      await c.close();
    }
  }));

  // With every node paused longer than the lease, no refresh can succeed:
  // the client's own deadline passes and the signal aborts. Before the
  // pause, renewal keeps the lease alive well past its expire.
  it('aborts the signal when the lease runs out with the cluster paused', () => withLogs(async () => {
    const c = new RaftlockClient({ endpoints: cluster.endpoints, requestTimeout: 500 });
    const all = cluster.running();
    let paused = false;
    try {
      let abortedWhilePaused = null;
      const exec = c.execute('paused_key', async (signal, lease) => {
        // 1. Renewal works: after three lease lengths the lock is still ours.
        await sleep(3000);
        assert.equal(signal.aborted, false, 'the lease was lost while the cluster was healthy');
        const held = await inspect.getLock('paused_key');
        assert.equal(held?.ownerId, lease.ownerId);
        // 2. Pause every node: no refresh can be answered.
        for (const i of all) cluster.signal(i, 'SIGSTOP');
        paused = true;
        await waitFor('the signal to abort', () => signal.aborted, 10000);
        abortedWhilePaused = paused;
        for (const i of all) cluster.signal(i, 'SIGCONT');
        paused = false;
        return 'finished';
      }, { expire: 1 });
      const err = await exec.then(() => null, (e) => e);
      assert.ok(err instanceof LockLostError, `execute must reject with LockLostError, got ${err}`);
      assert.match(err.message, /may have expired/);
      assert.equal(abortedWhilePaused, true);
      // After the pause the key is free again (released, or expired).
      await cluster.waitLeader();
      await waitFor('paused_key to be free', async () => (await inspect.getLock('paused_key')) === null, 15000);
    } finally {
      if (paused) for (const i of all) cluster.signal(i, 'SIGCONT');
      await c.close();
    }
  }));
});
