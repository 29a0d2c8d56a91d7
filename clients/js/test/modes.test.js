// Shared locks and semaphores from JavaScript (docs/modes.md), against a
// real 3-node cluster: through the client and through the locking
// provider, whose args the Locking Module hands on unchanged.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, waitFor } from './cluster.js';
import { RaftlockClient, RaftlockLockingProvider, RaftlockError } from '../index.mjs';

let cluster, client, provider;

before(async () => {
  cluster = await Cluster.start(3);
  // A new cluster starts at log version 1 and its leader raises it once
  // every member answered (within a second or so): modes need version 2.
  await waitFor('cluster version 2', async () => (await cluster.status(0)).clusterVersion >= 2);
  client = new RaftlockClient({ endpoints: cluster.endpoints });
  provider = new RaftlockLockingProvider({}, { endpoints: [...cluster.endpoints].reverse() });
});

after(async () => {
  await provider?.shutdown();
  await client?.close();
  await cluster?.stop();
});

/** Rejects with a RaftlockError of this code whose message matches. */
async function refused(p, code, message) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof RaftlockError, `${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

describe('modes', () => {
  it('shares a key among readers and keeps a writer out until they leave', async () => {
    const a = await client.acquire('report', { ownerId: 'reader-a', mode: 'shared' });
    const b = await client.acquire('report', { ownerId: 'reader-b', mode: 'shared' });
    assert.equal(a.locks[0].mode, 'shared');
    assert.equal(b.locks[0].mode, 'shared');
    await refused(client.acquire('report', { ownerId: 'writer' }), 'aborted', /report/);

    const l = await client.getLock('report');
    assert.equal(l.mode, 'shared');
    assert.deepEqual(l.holders.map((h) => h.ownerId), ['reader-a', 'reader-b']);
    assert.equal(l.fencingToken, b.fencingToken);

    // A waiting writer is granted once both readers are gone, with a token
    // above both of theirs.
    const writer = client.acquire('report', { ownerId: 'writer', waitTimeout: 10 });
    await client.release('report', { ownerId: 'reader-a' });
    await client.release('report', { ownerId: 'reader-b' });
    const w = await writer;
    assert.equal(w.locks[0].mode, 'exclusive');
    assert.ok(w.fencingToken > a.fencingToken && w.fencingToken > b.fencingToken);
    assert.equal(await client.release('report', { ownerId: 'writer' }), true);
  });

  it('grants at most limit permits of a semaphore, with their slots', async () => {
    const one = await client.acquire('supplier', { ownerId: 'import-1', mode: 'semaphore', limit: 3, permits: 2 });
    assert.equal(one.locks[0].mode, 'semaphore');
    assert.equal(one.locks[0].limit, 3);
    assert.equal(one.locks[0].slots.length, 2);
    await refused(client.acquire('supplier', { ownerId: 'import-2', mode: 'semaphore', limit: 3, permits: 2 }), 'aborted', /supplier/);
    const two = await client.acquire('supplier', { ownerId: 'import-2', mode: 'semaphore', limit: 3 });
    assert.equal(two.locks[0].slots.length, 1);
    assert.ok(!one.locks[0].slots.includes(two.locks[0].slots[0]), 'a slot given twice');

    // Another limit on the same key is refused, not silently applied.
    await refused(client.acquire('supplier', { ownerId: 'import-3', mode: 'semaphore', limit: 5 }), 'failed_precondition', /limit/);
    const listed = (await client.listLocks({ prefix: 'supplier' })).locks[0];
    assert.equal(listed.limit, 3);
    assert.equal(listed.holders.length, 2);
    await client.releaseAll({ ownerId: 'import-1' });
    await client.releaseAll({ ownerId: 'import-2' });
    assert.equal(await client.getLock('supplier'), null);
  });

  it('refuses bad mode options before sending, naming the field', async () => {
    await refused(client.acquire('k', { ownerId: 'o', mode: 'read' }), 'invalid_argument', /^mode: "read" is not one of/);
    await refused(client.acquire('k', { ownerId: 'o', mode: 'semaphore' }), 'invalid_argument', /^limit: /);
    await refused(client.acquire('k', { ownerId: 'o', mode: 'semaphore', limit: 2, permits: 3 }), 'invalid_argument', /^permits: /);
    await refused(client.acquire('k', { ownerId: 'o', mode: 'shared', limit: 2 }), 'invalid_argument', /^limit: only for mode "semaphore"/);
    await refused(client.acquire('k', { ownerId: 'o', permits: 2 }), 'invalid_argument', /^permits: only for mode "semaphore"/);
    await refused(client.acquire('k', { mode: 'shared' }), 'invalid_argument', /^ownerId: required/);
    await refused(client.execute('k', () => 1, { mode: 'semaphore', limit: 0 }), 'invalid_argument', /^limit: /);
  });

  it('runs jobs side by side through the provider with mode args', async () => {
    // Two shared executes hold the key at once: each job waits until the
    // other has started.
    let started = 0;
    let release;
    const both = new Promise((r) => { release = r; });
    const job = async () => {
      if (++started === 2) release();
      await both;
      return (await client.getLock('stock-report')).holders.length;
    };
    const args = { mode: 'shared', timeout: 5 };
    const [x, y] = await Promise.all([provider.execute('stock-report', job, args), provider.execute('stock-report', job, args)]);
    assert.deepEqual([x, y], [2, 2]);
    assert.equal(await client.getLock('stock-report'), null);

    // A semaphore of 1 through acquire/release; a second owner is busy.
    await provider.acquire('rebuild', { ownerId: 'n1', mode: 'semaphore', limit: 1, expire: 30 });
    await assert.rejects(provider.acquire('rebuild', { ownerId: 'n2', mode: 'semaphore', limit: 1 }), /Failed to acquire lock for key "rebuild"/);
    assert.equal(await provider.release('rebuild', { ownerId: 'n1' }), true);
  });
});
