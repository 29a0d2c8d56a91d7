// Fencing from JavaScript against a real 3-node cluster: checkFence, and
// currentFence() inside execute (also through the locking-module provider,
// whose jobs get no arguments). The row helpers against a real PostgreSQL
// are in test-pg/ (make fence-pg).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from './cluster.js';
import { RaftlockClient, RaftlockLockingProvider, RaftlockError, currentFence, claimRowSql } from '../index.mjs';

let cluster, client, provider;

before(async () => {
  cluster = await Cluster.start(3);
  client = new RaftlockClient({ endpoints: cluster.endpoints });
  provider = new RaftlockLockingProvider({}, { endpoints: cluster.endpoints });
});

after(async () => {
  await provider?.shutdown();
  await client?.close();
  await cluster?.stop();
});

describe('checkFence', () => {
  it('is current while the token is the grant, stale after the next grant', async () => {
    const first = await client.acquire('fence-a', { ownerId: 'alice' });
    let r = await client.checkFence('fence-a', first.fencingToken);
    assert.equal(r.current, true);
    assert.equal(r.lock.ownerId, 'alice');
    assert.equal(r.lock.fencingToken, first.fencingToken);
    // Re-entrant: the same owner keeps its token, which stays current.
    const again = await client.acquire('fence-a', { ownerId: 'alice' });
    assert.equal(again.fencingToken, first.fencingToken);
    assert.equal((await client.checkFence('fence-a', first.fencingToken)).current, true);
    await client.release('fence-a', { ownerId: 'alice' });
    r = await client.checkFence('fence-a', first.fencingToken);
    assert.deepEqual(r, { current: false, lock: null });
    const second = await client.acquire('fence-a', { ownerId: 'bob' });
    assert.ok(second.fencingToken > first.fencingToken);
    r = await client.checkFence('fence-a', String(first.fencingToken));
    assert.equal(r.current, false);
    assert.equal(r.lock.ownerId, 'bob');
    assert.equal(r.lock.fencingToken, second.fencingToken);
    await client.release('fence-a', { ownerId: 'bob' });
  });

  it('refuses a missing token', async () => {
    await assert.rejects(client.checkFence('fence-a', 0), (e) => e instanceof RaftlockError && e.code === 'invalid_argument');
    await assert.rejects(client.checkFence('fence-a', 'x'), (e) => e instanceof RaftlockError && e.code === 'invalid_argument');
  });
});

describe('currentFence', () => {
  it('is undefined outside execute and the lease inside, across awaits and nested executes', async () => {
    assert.equal(currentFence(), undefined);
    await client.execute('fence-b', async (signal, lease) => {
      assert.equal(currentFence(), lease);
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(currentFence().fencingToken, lease.fencingToken);
      await client.execute('fence-c', async (_s, inner) => {
        assert.equal(currentFence(), inner);
        assert.notEqual(inner.fencingToken, lease.fencingToken);
      });
      assert.equal(currentFence(), lease);
      assert.equal((await client.checkFence('fence-b', currentFence().fencingToken)).current, true);
    });
    assert.equal(currentFence(), undefined);
  });

  it('reaches a job the provider calls without arguments', async () => {
    const job = async () => {
      const f = currentFence();
      return f && (await client.checkFence('fence-d', f.fencingToken)).current;
    };
    assert.equal(await provider.execute('fence-d', () => job()), true);
  });
});

describe('claimRowSql', () => {
  it('writes the claim for $ and ? placeholders', () => {
    assert.deepEqual(claimRowSql({ table: 'stock', keyColumn: 'sku', key: 'sku-1', token: 7n }), {
      text: 'UPDATE stock SET fence_token = $1 WHERE sku = $2 AND fence_token <= $1', values: ['7', 'sku-1'],
    });
    assert.deepEqual(claimRowSql({ table: 'shop.stock', key: 3, token: 7, placeholder: '?' }), {
      text: 'UPDATE shop.stock SET fence_token = ? WHERE id = ? AND fence_token <= ?', values: ['7', 3, '7'],
    });
  });

  it('refuses what it cannot write safely', () => {
    assert.throws(() => claimRowSql({ table: 'stock; DROP TABLE x', key: 1, token: 1 }), /table/);
    assert.throws(() => claimRowSql({ table: 'stock', tokenColumn: '"t"', key: 1, token: 1 }), /tokenColumn/);
    assert.throws(() => claimRowSql({ table: 'stock', key: 1, token: 0 }), /never 0/);
    assert.throws(() => claimRowSql({ table: 'stock', key: 1, token: 2n ** 63n }), /BIGINT/);
    assert.throws(() => claimRowSql({ table: 'stock', token: 1 }), /key/);
    assert.throws(() => claimRowSql({ table: 'stock', key: 1, token: 1, placeholder: ':' }), /placeholder/);
  });
});
