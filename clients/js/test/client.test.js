// RaftlockClient against a real 3-node cluster: leader redirection,
// retries with the same request id, the re-issue of a cancelled wait, and
// the error codes.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Cluster, waitFor } from './cluster.js';
import { RaftlockClient, RaftlockError } from '../index.mjs';

let cluster, client;

before(async () => {
  cluster = await Cluster.start(3);
  client = new RaftlockClient({ endpoints: cluster.endpoints });
});

after(async () => {
  await client?.close();
  await cluster?.stop();
});

async function withLogs(fn) {
  try {
    return await fn();
  } catch (e) {
    e.message += `\n${cluster.logs()}`;
    throw e;
  }
}

/** An address where nothing listens. */
async function deadEndpoint() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

/** A fetch that lets the request reach the server but loses the answer of the first call to `method`. */
function losingFirstAnswer(method) {
  let lost = 0;
  const f = async (url, init) => {
    const res = await fetch(url, init);
    if (url.endsWith(`/${method}`) && lost === 0) {
      lost++;
      await res.text();
      throw new TypeError('fetch failed (answer lost by the test)');
    }
    return res;
  };
  f.lost = () => lost;
  return f;
}

describe('client', () => {
  // A client that knows only a follower learns the leader from the
  // Raftlock-Leader header and goes there next.
  it('follows the leader hint', () => withLogs(async () => {
    const leader = await cluster.waitLeader();
    const follower = [0, 1, 2].find((i) => i !== leader);
    const c = new RaftlockClient({ endpoints: [cluster.endpoints[follower]] });
    try {
      assert.equal(c.leader, null);
      await c.getLock('hint_key');
      assert.equal(c.leader, cluster.endpoints[leader]);
    } finally {
      await c.close();
    }
  }));

  // A dead endpoint is skipped; with none alive the call fails unavailable.
  it('skips endpoints that do not answer, and says unavailable when none does', () => withLogs(async () => {
    const dead = await deadEndpoint();
    const c = new RaftlockClient({ endpoints: [dead, cluster.endpoints[0]], retryTimeout: 5000 });
    const d = new RaftlockClient({ endpoints: [dead], retryTimeout: 300 });
    try {
      assert.equal((await c.acquire('dead_key', { ownerId: 'o' })).locks[0].ownerId, 'o');
      assert.equal(await c.release('dead_key', { ownerId: 'o' }), true);
      await assert.rejects(d.getLock('dead_key'), { name: 'RaftlockError', code: 'unavailable' });
    } finally {
      await c.close();
      await d.close();
    }
  }));

  // A lost answer is retried with the same request id, so the retry gets
  // the first result. The owner is anonymous: a new acquire would be
  // refused as busy, so this fails if the id is not reused.
  it('retries a lost answer with the same request id', () => withLogs(async () => {
    const f = losingFirstAnswer('Acquire');
    const c = new RaftlockClient({ endpoints: cluster.endpoints, fetch: f });
    try {
      const got = await c.acquire('retry_key', { expire: 30 });
      assert.equal(f.lost(), 1, 'the first answer was lost');
      const lock = await client.getLock('retry_key');
      assert.equal(lock.fencingToken, got.fencingToken);
      const out = await client.getRequestOutcome(got.requestId);
      assert.equal(out.state, 'succeeded');
      assert.deepEqual(out.keys, ['retry_key']);
      await assert.rejects(client.acquire('retry_key'), { code: 'aborted' });
      assert.equal(await client.release('retry_key'), true);
    } finally {
      await c.close();
    }
  }));

  // A waiting acquire whose connection drops is withdrawn by the server; the
  // retry with the same id answers canceled, and the client asks again with
  // a new request id, so the caller still gets the lock.
  it('re-issues a cancelled wait with a new request id', () => withLogs(async () => {
    await client.acquire('cancel_key', { ownerId: 'holder' });
    let firstId = null;
    const dropping = async (url, init) => {
      if (!url.endsWith('/Acquire') || firstId !== null) return fetch(url, init);
      firstId = JSON.parse(init.body).requestId;
      const ac = new AbortController();
      const answer = fetch(url, { ...init, signal: AbortSignal.any([init.signal, ac.signal]) });
      answer.catch(() => {});
      await waitFor('the acquire to wait in the queue', async () => (await client.getLock('cancel_key')).waiters === 1);
      ac.abort(); // the connection drops while the acquire waits
      return answer;
    };
    const c = new RaftlockClient({ endpoints: cluster.endpoints, fetch: dropping });
    try {
      const waiting = c.acquire('cancel_key', { ownerId: 'waiter', waitTimeout: 20 });
      await waitFor('the first attempt to be withdrawn', async () => firstId && (await client.getRequestOutcome(firstId)).state === 'cancelled');
      await waitFor('the re-issued acquire to queue', async () => (await client.getLock('cancel_key')).waiters === 1);
      assert.equal(await client.release('cancel_key', { ownerId: 'holder' }), true);
      const got = await waiting;
      assert.notEqual(got.requestId, firstId);
      assert.equal(got.locks[0].ownerId, 'waiter');
      assert.equal(await client.release('cancel_key', { ownerId: 'waiter' }), true);
    } finally {
      await c.close();
    }
  }));

  // CancelAcquire withdraws a waiter; the waiting call answers canceled and
  // GetRequestOutcome tells the same.
  it('cancels a waiting acquire by request id', () => withLogs(async () => {
    await client.acquire('wait_key', { ownerId: 'holder' });
    const waiting = client.acquire('wait_key', { ownerId: 'w', waitTimeout: 30, requestId: 'wait-1' }).then(() => null, (e) => e);
    await waitFor('the waiter', async () => (await client.getRequestOutcome('wait-1')).state === 'pending');
    const out = await client.cancelAcquire('wait-1');
    assert.equal(out.state, 'cancelled');
    const err = await waiting;
    assert.ok(err instanceof RaftlockError);
    assert.equal(err.code, 'canceled');
    assert.equal((await client.getLock('wait_key')).waiters, 0);
    assert.equal(await client.release('wait_key', { ownerId: 'holder' }), true);
  }));

  // Refresh, fencing-token release and list, with their error codes.
  it('refreshes, releases by fencing token, and lists', () => withLogs(async () => {
    const got = await client.acquire(['t_a', 't_b'], { ownerId: 'tok', expire: 5 });
    const locks = await client.refresh(['t_a', 't_b'], { ownerId: 'tok', expire: 20 });
    assert.deepEqual(locks.map((l) => [l.key, l.expiresIn <= 20 && l.expiresIn > 5]), [['t_a', true], ['t_b', true]]);
    await assert.rejects(client.refresh(['t_a'], { ownerId: 'someone' }), { code: 'failed_precondition' });
    const { locks: listed } = await client.listLocks({ ownerId: 'tok' });
    assert.deepEqual(listed.map((l) => l.key), ['t_a', 't_b']);
    const tokenA = got.locks.find((l) => l.key === 't_a').fencingToken;
    await assert.rejects(client.release('t_a', { ownerId: 'tok', fencingToken: tokenA - 1n }), { code: 'failed_precondition' });
    assert.equal(await client.release('t_a', { ownerId: 'tok', fencingToken: tokenA }), true);
    assert.equal(await client.releaseAll({ ownerId: 'tok' }), 1);
    await assert.rejects(client.acquire(''), { code: 'invalid_argument', message: /keys\[0\]/ });
    await assert.rejects(client.acquire('x', { expire: -1 }), { code: 'invalid_argument' });
  }));

  // The client's own connections write headers by hand: a header it sets
  // itself, a bad name or a line break in a value is refused up front.
  it('refuses headers it cannot send', () => {
    assert.throws(() => new RaftlockClient({ headers: { 'Content-Type': 'text/plain' } }), /Content-Type is set by the client/);
    assert.throws(() => new RaftlockClient({ headers: { 'x y': '1' } }), /"x y" is not a header name/);
    assert.throws(() => new RaftlockClient({ headers: { 'x-a': 'b\r\nhost: evil' } }), /the value of x-a holds a line break/);
  });
});
