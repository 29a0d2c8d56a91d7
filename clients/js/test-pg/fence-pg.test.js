// The JavaScript row pattern (claimRow, withFencedRow, currentFence) on a
// real PostgreSQL started here, with tokens of a real 3-node raftlock
// cluster. Run by make fence-pg:
//
//   node --test --test-concurrency=1 clients/js/test-pg/*.test.js

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, waitFor } from '../test/cluster.js';
import { startPostgres } from './postgres.js';
import { RaftlockClient, RaftlockLockingProvider, FencedError, NoRowError, claimRow, currentFence, withFencedRow } from '../index.mjs';

let pg, db, cluster, client, provider;

before(async () => {
  pg = await startPostgres();
  db = await pg.connect();
  await db.query('CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INT NOT NULL, fence_token BIGINT NOT NULL DEFAULT 0)');
  cluster = await Cluster.start(3);
  client = new RaftlockClient({ endpoints: cluster.endpoints });
  provider = new RaftlockLockingProvider({}, { endpoints: cluster.endpoints });
});

after(async () => {
  db?.close();
  await provider?.shutdown();
  await client?.close();
  await cluster?.stop();
  await pg?.stop();
});

const q = (t, v) => db.query(t, v);
const row = async (sku) => (await db.query('SELECT qty, fence_token FROM stock WHERE sku = $1', [sku])).rows[0];
const sellOne = (sku, token) => withFencedRow(q, { table: 'stock', keyColumn: 'sku', key: sku, token },
  (tq) => tq('UPDATE stock SET qty = qty - 1 WHERE sku = $1', [sku]));

it('a holder whose lease ran out cannot write after the next holder', async () => {
  await db.query("INSERT INTO stock (sku, qty) VALUES ('sku-late', 5)");
  // A takes the lock with a short lease and no renewal: as if it paused.
  const a = await client.acquire('sku-late', { ownerId: 'worker-a', expire: 1 });
  await waitFor('worker-a\'s lease to run out', async () => !(await client.checkFence('sku-late', a.fencingToken)).current);
  // B, a locking-module job that takes no arguments, sells through currentFence().
  await provider.execute('sku-late', async () => sellOne('sku-late', currentFence().fencingToken));
  const afterB = await row('sku-late');
  assert.equal(afterB.qty, '4');
  assert.ok(BigInt(afterB.fence_token) > a.fencingToken);
  // A wakes up and writes: the database refuses it and nothing changes.
  await assert.rejects(sellOne('sku-late', a.fencingToken), (e) => e instanceof FencedError && e.code === 'fenced'
    && e.token === a.fencingToken && e.highest === BigInt(afterB.fence_token));
  assert.deepEqual(await row('sku-late'), afterB);
});

it('not lower: a re-entrant holder writes again with its token, a lower one is refused', async () => {
  await db.query("INSERT INTO stock (sku, qty) VALUES ('sku-re', 5)");
  const first = await client.acquire('sku-re', { ownerId: 'alice' });
  await sellOne('sku-re', first.fencingToken);
  const again = await client.acquire('sku-re', { ownerId: 'alice' });
  assert.equal(again.fencingToken, first.fencingToken);
  await sellOne('sku-re', again.fencingToken); // equal token: passes
  await client.release('sku-re', { ownerId: 'alice' });
  const bob = await client.acquire('sku-re', { ownerId: 'bob' });
  await sellOne('sku-re', bob.fencingToken);
  await assert.rejects(sellOne('sku-re', first.fencingToken), FencedError);
  assert.deepEqual(await row('sku-re'), { qty: '2', fence_token: String(bob.fencingToken) });
  await client.release('sku-re', { ownerId: 'bob' });
});

it('claimRow inside a transaction of the caller, and a missing row', async () => {
  await db.query("INSERT INTO stock (sku, qty) VALUES ('sku-tx', 1)");
  const l = await client.acquire('sku-tx', { ownerId: 'carol' });
  await db.query('BEGIN');
  await claimRow(q, { table: 'stock', keyColumn: 'sku', key: 'sku-tx', token: l.fencingToken });
  await db.query("UPDATE stock SET qty = 0 WHERE sku = 'sku-tx'");
  await db.query('ROLLBACK'); // the claim goes with the transaction
  assert.deepEqual(await row('sku-tx'), { qty: '1', fence_token: '0' });
  await assert.rejects(claimRow(q, { table: 'stock', keyColumn: 'sku', key: 'no-such-sku', token: l.fencingToken }), NoRowError);
  await client.release('sku-tx', { ownerId: 'carol' });
});
