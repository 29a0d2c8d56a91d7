// The locking module's own behaviours, through RaftlockLockingProvider,
// against a real 3-node raftlock cluster started here.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, waitFor } from './cluster.js';
import { RaftlockClient, RaftlockLockingProvider, RaftlockError, TIMED_OUT_MESSAGE } from '../index.mjs';

let cluster, service, other, client;

before(async () => {
  cluster = await Cluster.start(3);
  // Two providers with the endpoints in different orders stand for two
  // application processes; client inspects the lock table.
  service = new RaftlockLockingProvider({}, { endpoints: cluster.endpoints });
  other = new RaftlockLockingProvider({}, { endpoints: [...cluster.endpoints].reverse() });
  client = new RaftlockClient({ endpoints: cluster.endpoints });
});

after(async () => {
  await service?.shutdown();
  await other?.shutdown();
  await client?.close();
  await cluster?.stop();
});

/** Fails with the nodes' logs attached, so a failure can be read. */
async function withLogs(fn) {
  try {
    return await fn();
  } catch (e) {
    e.message += `\n${cluster.logs()}`;
    throw e;
  }
}

describe('locking provider', () => {
  it('has the identifier locking-raftlock', () => {
    assert.equal(RaftlockLockingProvider.identifier, 'locking-raftlock');
  });

  // Ten concurrent executes on one key from two processes never oversell:
  // the jobs run one at a time.
  it('serialises a stock decrement across 10 concurrent executes', () => withLogs(async () => {
    let stock = 5;
    let inside = 0;
    let maxInside = 0;
    const buy = async () => {
      inside++;
      maxInside = Math.max(maxInside, inside);
      try {
        if (stock > 0) {
          await sleep(10);
          stock--;
          return true;
        }
        return false;
      } finally {
        inside--;
      }
    };
    // Without a lock the same jobs oversell: the check below can fail.
    await Promise.all(Array.from({ length: 10 }, buy));
    assert.ok(stock < 0, `without a lock stock should go negative, got ${stock}`);

    stock = 5;
    maxInside = 0;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? other : service).execute('item_1', buy, { timeout: 10 })));
    assert.equal(stock, 0);
    assert.equal(maxInside, 1, 'two jobs ran at once');
    assert.equal(results.filter(Boolean).length, 5);
    assert.equal(await client.getLock('item_1'), null, 'the key is free after the executes');
  }));

  // A key held by one owner can neither be released nor taken by another.
  it('refuses another owner', () => withLogs(async () => {
    await service.acquire('key_name', { ownerId: 'user_id_123' });
    assert.equal(await service.release('key_name', { ownerId: 'user_id_456' }), false);
    await assert.rejects(other.acquire('key_name', { ownerId: 'user_id_456' }), {
      name: 'RaftlockError', code: 'aborted', message: 'Failed to acquire lock for key "key_name"',
    });
    assert.equal((await client.getLock('key_name')).ownerId, 'user_id_123');
    assert.equal(await service.release('key_name', { ownerId: 'user_id_123' }), true);
    assert.equal(await client.getLock('key_name'), null);
  }));

  // The same owner may take a key again (from any process); the token stays.
  it('is re-entrant for the same owner', () => withLogs(async () => {
    const key = 'mySpecialKey';
    const user1 = { ownerId: 'user_id_456' };
    const user2 = { ownerId: 'user_id_000' };
    assert.equal(await service.acquire(key, user1), undefined);
    const token = (await client.getLock(key)).fencingToken;
    assert.equal(await other.acquire(key, user1), undefined);
    await assert.rejects(service.acquire(key, user2), { message: `Failed to acquire lock for key "${key}"` });
    await assert.rejects(other.acquire(key, user2), { message: `Failed to acquire lock for key "${key}"` });
    await service.acquire(key, user1);
    assert.equal((await client.getLock(key)).fencingToken, token, 're-entry must keep the fencing token');
    assert.equal(await service.release(key, user2), false);
    assert.equal(await service.release(key, user1), true);
  }));

  // An anonymous lock is never re-entrant, and only an anonymous release
  // frees it.
  it('treats anonymous locks as never re-entrant', () => withLogs(async () => {
    const key = 'anonymousKey';
    const user2 = { ownerId: 'user_id_000' };
    assert.equal(await service.acquire(key), undefined);
    await assert.rejects(service.acquire(key), { message: `Failed to acquire lock for key "${key}"` });
    await assert.rejects(other.acquire(key), { message: `Failed to acquire lock for key "${key}"` });
    await assert.rejects(service.acquire(key, user2), { message: `Failed to acquire lock for key "${key}"` });
    assert.equal(await service.release(key, user2), false);
    assert.equal(await service.release(key), true);
    assert.equal(await client.getLock(key), null);
  }));

  // releaseAll frees one owner's locks; without an owner, only the
  // anonymous ones (never other owners').
  it('releaseAll frees one owner, or the anonymous locks', () => withLogs(async () => {
    await service.acquire(['ra1', 'ra2'], { ownerId: 'ra-owner' });
    await service.acquire('ra3');
    await service.acquire('ra4', { ownerId: 'ra-other' });
    await other.releaseAll({ ownerId: 'ra-owner' });
    assert.equal(await client.getLock('ra1'), null);
    assert.equal(await client.getLock('ra2'), null);
    assert.notEqual(await client.getLock('ra3'), null);
    await other.releaseAll();
    assert.equal(await client.getLock('ra3'), null);
    assert.equal((await client.getLock('ra4')).ownerId, 'ra-other');
    await service.releaseAll({ ownerId: 'ra-other' });
    assert.equal(await client.getLock('ra4'), null);
  }));

  // While a job runs its keys are held by it; when it is done they are free.
  it('holds the keys until the job is done', () => withLogs(async () => {
    const result = await service.execute('held_key', async () => {
      await assert.rejects(other.acquire('held_key', { ownerId: 'someone_else' }), { code: 'aborted' });
      return 'done';
    });
    assert.equal(result, 'done');
    await other.acquire('held_key', { ownerId: 'someone_else' });
    assert.equal(await other.release('held_key', { ownerId: 'someone_else' }), true);
  }));

  // A job that throws still releases its keys, and its error comes back.
  it('releases the keys when the job fails', () => withLogs(async () => {
    let ran1 = 0;
    let ran2 = 0;
    const boom = new Error('Error');
    await assert.rejects(service.execute('lock_key', async () => { ran1++; throw boom; }), (e) => e === boom);
    assert.equal(await client.getLock('lock_key'), null);
    await other.execute('lock_key', async () => { ran2++; });
    assert.equal(ran1, 1);
    assert.equal(ran2, 1);
  }));

  // The 1 s / 1 s / 2 s trio: the first holds the key; the second waits 1 s
  // and times out without running; the third waits 2 s and runs.
  it('times out a waiter without running its job, and serves a longer one', () => withLogs(async () => {
    const ran = [];
    let firstHolds;
    const holding = new Promise((r) => { firstHolds = r; });
    let secondDone;
    const secondSettled = new Promise((r) => { secondDone = r; });
    const first = service.execute('trio_key', async () => {
      ran.push('fn_1');
      firstHolds();
      // Hold until the second has given up (it waits 1 s), at most 10 s.
      await Promise.race([secondSettled, sleep(10000, undefined, { ref: false })]);
      await sleep(10);
      return 'fn_1';
    }, { timeout: 1 }).catch((e) => e);
    await holding;
    const second = other.execute('trio_key', async () => { ran.push('fn_2'); return 'fn_2'; }, { timeout: 1 })
      .catch((e) => e).finally(() => secondDone());
    const third = service.execute('trio_key', async () => { ran.push('fn_3'); return 'fn_3'; }, { timeout: 2 }).catch((e) => e);
    const res = await Promise.all([first, second, third]);
    assert.equal(res[0], 'fn_1');
    assert.ok(res[1] instanceof RaftlockError, `second: ${res[1]}`);
    assert.equal(res[1].message, TIMED_OUT_MESSAGE);
    assert.equal(res[1].code, 'deadline_exceeded');
    assert.equal(res[2], 'fn_3');
    assert.deepEqual(ran, ['fn_1', 'fn_3']);
  }));

  // A timeout below 1 s is clamped to 1 s (the module's rule): a 0.01 s
  // timeout still waits for a key freed shortly after.
  it('clamps the timeout to at least 1 s', () => withLogs(async () => {
    await service.acquire('clamp_key', { ownerId: 'clamp' });
    const waiting = other.execute('clamp_key', async () => 'ran', { timeout: 0.01 });
    await waitFor('the execute to queue', async () => (await client.getLock('clamp_key')).waiters === 1);
    assert.equal(await service.release('clamp_key', { ownerId: 'clamp' }), true);
    assert.equal(await waiting, 'ran');
  }));

  // Callers asking for the same two keys in opposite orders never deadlock:
  // multi-key waits are granted in arrival order, all keys at once.
  it('never deadlocks on opposite key orders', () => withLogs(async () => {
    const inside = { A: 0, B: 0 };
    let overlaps = 0;
    const job = async () => {
      for (const k of ['A', 'B']) if (++inside[k] > 1) overlaps++;
      await sleep(5);
      for (const k of ['A', 'B']) inside[k]--;
      return true;
    };
    const runs = Array.from({ length: 12 }, (_, i) => (i % 2 ? other : service)
      .execute(i % 2 ? ['dl_A', 'dl_B'] : ['dl_B', 'dl_A'], job, { timeout: 20 }));
    const results = await Promise.all(runs);
    assert.equal(results.length, 12);
    assert.equal(overlaps, 0);
  }));

  // A multi-key execute that times out holds nothing afterwards: not the
  // free keys, not a place in any queue.
  it('leaves nothing held after a timed-out multi-key execute', () => withLogs(async () => {
    await service.acquire('mk_2', { ownerId: 'blocker' });
    let ran = false;
    await assert.rejects(other.execute(['mk_1', 'mk_2', 'mk_3'], async () => { ran = true; }, { timeout: 1 }), {
      code: 'deadline_exceeded', message: TIMED_OUT_MESSAGE,
    });
    assert.equal(ran, false);
    assert.equal(await client.getLock('mk_1'), null);
    assert.equal(await client.getLock('mk_3'), null);
    const held = await client.getLock('mk_2');
    assert.equal(held.ownerId, 'blocker');
    assert.equal(held.waiters, 0);
    const { locks } = await client.listLocks({ prefix: 'mk_' });
    assert.deepEqual(locks.map((l) => [l.key, l.ownerId]), [['mk_2', 'blocker']]);
    assert.equal(await service.release('mk_2', { ownerId: 'blocker' }), true);
  }));

  // namespace prefixes every key on the wire; errors name the caller's key.
  it('keeps namespaces apart', () => withLogs(async () => {
    const a = new RaftlockLockingProvider({}, { endpoints: cluster.endpoints, namespace: 'shopA:' });
    const b = new RaftlockLockingProvider({}, { endpoints: cluster.endpoints, namespace: 'shopB:' });
    try {
      await a.acquire('sku', { ownerId: 'x' });
      await b.acquire('sku', { ownerId: 'y' });
      await assert.rejects(a.acquire('sku', { ownerId: 'z' }), { message: 'Failed to acquire lock for key "sku"' });
      assert.equal((await client.getLock('shopA:sku')).ownerId, 'x');
      assert.equal((await client.getLock('shopB:sku')).ownerId, 'y');
      assert.equal(await a.release('sku', { ownerId: 'x' }), true);
      assert.equal(await b.release('sku', { ownerId: 'y' }), true);
    } finally {
      await a.shutdown();
      await b.shutdown();
    }
  }));

  // A release issued after an execute that waits for it is not held behind
  // that execute by the provider's per-key order (the execute waits for this
  // very release): both complete.
  it('does not hold a release behind the execute it unblocks', () => withLogs(async () => {
    await service.acquire('ord_key', { ownerId: 'holder' });
    const ran = service.execute('ord_key', async () => 'ran', { timeout: 5 });
    const released = service.release('ord_key', { ownerId: 'holder' });
    assert.equal(await released, true);
    assert.equal(await ran, 'ran');
  }));

  // The timeout bounds the wait (the framework's contract: past it "the job
  // is canceled and the lock is released"): a grant whose answer arrives
  // after the timeout is handed back and the job never runs.
  it('hands back a grant that arrives after the timeout', () => withLogs(async () => {
    const slowAcquire = async (url, init) => {
      const res = await fetch(url, init);
      if (url.endsWith('/Acquire')) await sleep(1500);
      return res;
    };
    const p = new RaftlockLockingProvider({ endpoints: cluster.endpoints, fetch: slowAcquire });
    try {
      let ran = false;
      await assert.rejects(p.execute('late_key', async () => { ran = true; }, { timeout: 1 }), {
        code: 'deadline_exceeded', message: TIMED_OUT_MESSAGE,
      });
      assert.equal(ran, false);
      assert.equal(await client.getLock('late_key'), null, 'the late grant was released');
    } finally {
      await p.shutdown();
    }
  }));

  // The provider has no default endpoint: none from the options or the
  // environment is an error, not localhost.
  it('refuses to start without endpoints', () => {
    const saved = process.env.RAFTLOCK_ENDPOINTS;
    delete process.env.RAFTLOCK_ENDPOINTS;
    try {
      assert.throws(() => new RaftlockLockingProvider({}), /no endpoints: set options\.endpoints/);
      assert.throws(() => new RaftlockLockingProvider({ endpoints: [] }), /no endpoints/);
    } finally {
      if (saved !== undefined) process.env.RAFTLOCK_ENDPOINTS = saved;
    }
  });

  // After shutdown the provider refuses calls; a running execute's signal
  // aborts and its keys are freed.
  it('shuts down: aborts running jobs, frees their keys, refuses new calls', () => withLogs(async () => {
    const p = new RaftlockLockingProvider({}, { endpoints: cluster.endpoints });
    let started;
    const running = new Promise((r) => { started = r; });
    const exec = p.execute('sd_key', (signal) => new Promise((resolve) => {
      started();
      signal.addEventListener('abort', () => resolve('saw abort'), { once: true });
    }));
    const settled = exec.then(() => null, (e) => e);
    await running;
    await p.shutdown();
    const err = await settled;
    assert.equal(err?.name, 'LockLostError');
    assert.equal(err.code, 'lock_lost');
    await assert.rejects(p.acquire('sd_key'), /shut down/);
    await waitFor('sd_key to be free', async () => (await client.getLock('sd_key')) === null);
  }));
});
