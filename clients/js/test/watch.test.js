// RaftlockClient.watch against a real 3-node cluster: the async iterator
// over Connect JSON streaming sees a snapshot, then every event in log
// order; the node it watches is killed mid-stream and the iterator resumes
// on another from the last index: no event twice, none lost, indexes in
// order; an aborted signal ends the iteration.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
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

/** Collects a watch's updates until its signal aborts. */
function collect(w) {
  const got = { updates: [], error: null };
  got.done = (async () => {
    try {
      for await (const u of w) got.updates.push(u);
    } catch (e) {
      got.error = e;
    }
  })();
  got.events = () => got.updates.filter((u) => u.type === 'events').flatMap((u) => u.events);
  got.has = (key, kind, owner) => got.events().some((e) => e.key === key && e.kind === kind && e.ownerId === owner);
  return got;
}

describe('watch', () => {
  it('resumes across the loss of the node it watches, without gap or duplicate', async () => {
    const leader = await cluster.waitLeader();
    const follower = [0, 1, 2].find((i) => i !== leader);
    const other = [0, 1, 2].find((i) => i !== leader && i !== follower);
    // Watch through the follower first; the reference watches the leader.
    const wc = new RaftlockClient({ endpoints: [cluster.endpoints[follower], cluster.endpoints[other], cluster.endpoints[leader]] });
    const rc = new RaftlockClient({ endpoints: [cluster.endpoints[other]] });
    const ac = new AbortController();
    const w = collect(wc.watch('js:', { signal: ac.signal }));
    const ref = collect(rc.watch('js:', { signal: ac.signal }));
    try {
      await waitFor('both snapshots', () => w.updates.length > 0 && ref.updates.length > 0);
      assert.equal(w.updates[0].type, 'snapshot');
      assert.equal(w.updates[0].resync, false);

      await client.acquire(['js:a'], { ownerId: 'a', expire: 0 });
      const waiting = client.acquire(['js:a'], { ownerId: 'b', expire: 0, waitTimeout: 30 });
      await waitFor('b to queue', () => w.has('js:a', 'waiter_joined', 'b'));
      await client.release(['js:a'], { ownerId: 'a' });
      await waiting;
      await client.release(['js:a'], { ownerId: 'b' });

      await cluster.kill(follower);
      for (let i = 0; i < 5; i++) {
        await client.acquire(['js:load'], { ownerId: `l${i}`, expire: 0 });
        await client.release(['js:load'], { ownerId: `l${i}` });
      }
      await client.acquire(['js:end'], { ownerId: 'end', expire: 0 });
      await waitFor('the resumed watch to see the end', () => w.has('js:end', 'acquired', 'end'), 20000);
      await waitFor('the reference to see the end', () => ref.has('js:end', 'acquired', 'end'));

      const evs = w.events();
      let last = 0n;
      const seen = new Set();
      for (const e of evs) {
        assert.ok(e.index >= last, `index ${e.index} after ${last}`);
        last = e.index;
        const id = `${e.index}/${e.key}/${e.kind}/${e.ownerId}`;
        assert.ok(!seen.has(id), `${id} twice`);
        seen.add(id);
      }
      const a = evs.filter((e) => e.key === 'js:a').map((e) => `${e.kind} ${e.ownerId}${e.previousOwnerId ? ` from ${e.previousOwnerId}` : ''}`);
      assert.deepEqual(a, ['acquired a', 'waiter_joined b', 'released a', 'handed_off b from a', 'released b']);
      assert.deepEqual(evs.map((e) => `${e.index} ${e.key} ${e.kind} ${e.ownerId}`), ref.events().map((e) => `${e.index} ${e.key} ${e.kind} ${e.ownerId}`));
      assert.ok(!w.updates.slice(1).some((u) => u.type === 'snapshot'), 'the watch resynced instead of resuming');
      assert.equal(typeof evs[0].fencingToken, 'bigint');
    } catch (e) {
      e.message += `\n${cluster.logs()}`;
      throw e;
    } finally {
      ac.abort();
      await w.done;
      await ref.done;
      await wc.close();
      await rc.close();
      await cluster.restart(follower);
    }
    assert.equal(w.error, null);
  });

  it('resumes from fromIndex, and ends when the signal aborts', async () => {
    const l = await client.acquire(['js:from'], { ownerId: 'f', expire: 0 });
    const token = l.fencingToken;
    await client.release(['js:from'], { ownerId: 'f' });
    // Through the leader, which has run since the cluster started: a node
    // restarted by the test above may hold no history from before its
    // restart, and rightly answers with a resync snapshot instead.
    const lc = new RaftlockClient({ endpoints: [cluster.endpoints[await cluster.waitLeader()]] });
    try {
      const ac = new AbortController();
      const it = lc.watch('js:from', { fromIndex: token, signal: ac.signal })[Symbol.asyncIterator]();
      const first = await it.next();
      assert.equal(first.value.type, 'events');
      assert.deepEqual(first.value.events.map((e) => e.kind), ['released']);
      ac.abort();
      const end = await it.next();
      assert.equal(end.done, true);
    } finally {
      await lc.close();
    }
  });

  it('refuses a bad request at once with invalid_argument', async () => {
    const it = client.watch('x', { key: 'y\u0000' })[Symbol.asyncIterator]();
    await assert.rejects(it.next(), (e) => e instanceof RaftlockError && e.code === 'invalid_argument');
  });
});
