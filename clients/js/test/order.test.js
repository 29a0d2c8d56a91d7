// KeyOrder (src/order.js) on its own: which earlier calls a call waits for,
// and that it never waits for a later one. No cluster: the calls are
// tickets, and "the answer came" is leave().

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const { KeyOrder, Kind } = createRequire(import.meta.url)('../src/order.js');

/** Resolves to 'ready', or the error's message, or 'pending' if neither within a tick of the timers. */
async function state(p) {
  if (p === null) return 'ready';
  return Promise.race([p.then(() => 'ready', (e) => e.message), new Promise((r) => setTimeout(() => r('pending'), 20))]);
}

describe('KeyOrder', () => {
  // An acquire waits for every earlier call on one of its keys, and goes as
  // soon as they all have their answers.
  it('admits acquires on a key one after the other, in issuing order', async () => {
    const o = new KeyOrder();
    const a = o.enter(Kind.WAIT, ['k'], 'e1');
    const b = o.enter(Kind.WAIT, ['k'], 'e2');
    const c = o.enter(Kind.WAIT, ['k'], 'e3');
    assert.equal(await state(a.ready(Infinity)), 'ready');
    const pb = b.ready(Infinity);
    const pc = c.ready(Infinity);
    assert.equal(await state(pb), 'pending');
    assert.equal(await state(pc), 'pending');
    a.leave();
    assert.equal(await state(pb), 'ready');
    assert.equal(await state(pc), 'pending', 'c still waits for b');
    b.leave();
    assert.equal(await state(pc), 'ready');
  });

  // Keys that share nothing do not wait for each other.
  it('lets calls on other keys through', async () => {
    const o = new KeyOrder();
    o.enter(Kind.WAIT, ['a'], 'e1');
    assert.equal(await state(o.enter(Kind.WAIT, ['b'], 'e2').ready(Infinity)), 'ready');
  });

  // A multi-key call waits for the earlier calls on any of its keys, then is
  // admitted whole (one all-or-nothing request, never key by key).
  it('admits a multi-key call whole, after the earlier calls on all its keys', async () => {
    const o = new KeyOrder();
    const a = o.enter(Kind.WAIT, ['x'], 'e1');
    const b = o.enter(Kind.WAIT, ['y'], 'e2');
    const ab = o.enter(Kind.WAIT, ['y', 'x'], 'e3');
    const p = ab.ready(Infinity);
    a.leave();
    assert.equal(await state(p), 'pending');
    b.leave();
    assert.equal(await state(p), 'ready');
  });

  // The local wait counts against the call's own timeout.
  it('times out a wait with the module\'s message', async () => {
    const o = new KeyOrder();
    o.enter(Kind.WAIT, ['k'], 'e1');
    const t = o.enter(Kind.WAIT, ['k'], 'e2');
    const err = await t.ready(performance.now() + 30).catch((e) => e);
    assert.equal(err.message, 'Timed-out acquiring lock.');
    assert.equal(err.code, 'deadline_exceeded');
  });

  // A fail-fast acquire behind another owner's waiting acquire fails at once
  // with the busy error for the first such key; behind its own owner's, or
  // behind fail-fast calls, it waits.
  it('fails a fail-fast acquire at once behind another owner\'s waiting one', async () => {
    const o = new KeyOrder();
    o.enter(Kind.WAIT, ['b', 'c'], 'exec-1');
    const f = o.enter(Kind.FAST, ['c', 'a', 'b'], 'user');
    const err = await f.ready(Infinity).catch((e) => e);
    assert.equal(err.message, 'Failed to acquire lock for key "b"');
    assert.equal(err.code, 'aborted');
    const anon = o.enter(Kind.FAST, ['c'], '');
    assert.equal(await state(anon.ready(Infinity)), 'Failed to acquire lock for key "c"');

    const o2 = new KeyOrder();
    const w = o2.enter(Kind.WAIT, ['k'], 'same');
    const mt = o2.enter(Kind.FAST, ['k'], 'same');
    const mine = mt.ready(Infinity);
    assert.equal(await state(mine), 'pending', 'the same owner waits (it may be re-entrant)');
    w.leave();
    assert.equal(await state(mine), 'ready');
    mt.leave();
    const f1 = o2.enter(Kind.FAST, ['k'], 'u1');
    const f2 = o2.enter(Kind.FAST, ['k'], 'u2').ready(Infinity);
    assert.equal(await state(f2), 'pending');
    f1.leave();
    assert.equal(await state(f2), 'ready');
  });

  // A release never waits for another owner's waiting acquire (that acquire
  // may be waiting for this very release), but follows fail-fast calls and
  // its own owner's.
  it('does not hold a release behind another owner\'s waiting acquire', async () => {
    const o = new KeyOrder();
    o.enter(Kind.WAIT, ['k'], 'exec-1');
    for (const owner of ['holder', '']) {
      const t = o.enter(Kind.RELEASE, ['k'], owner);
      assert.equal(await state(t.ready(Infinity)), 'ready', `a release by ${JSON.stringify(owner)}`);
      t.leave();
    }
    const own = o.enter(Kind.WAIT, ['k'], 'holder');
    const fast = o.enter(Kind.FAST, ['k'], 'holder');
    const r = o.enter(Kind.RELEASE, ['k'], 'holder').ready(Infinity);
    fast.leave();
    assert.equal(await state(r), 'pending', 'its own owner\'s waiting acquire comes first');
    own.leave();
    assert.equal(await state(r), 'ready');
  });

  // releaseAll covers every key: it follows earlier calls on any key, and
  // every later call follows it.
  it('treats releaseAll as a release of every key', async () => {
    const o = new KeyOrder();
    const f = o.enter(Kind.FAST, ['a'], 'u');
    o.enter(Kind.WAIT, ['b'], 'exec-1');
    const all = o.enter(Kind.RELEASE, null, 'u');
    const pAll = all.ready(Infinity);
    assert.equal(await state(pAll), 'pending');
    f.leave();
    assert.equal(await state(pAll), 'ready', 'not held by the other owner\'s waiting acquire');
    const later = o.enter(Kind.WAIT, ['zzz'], 'exec-2').ready(Infinity);
    assert.equal(await state(later), 'pending');
    all.leave();
    assert.equal(await state(later), 'ready');
  });

  // An aborted signal ends the local wait with its reason; a ticket that
  // left is forgotten (nothing kept per key).
  it('ends a wait on abort and keeps nothing for keys no call names', async () => {
    const o = new KeyOrder();
    const a = o.enter(Kind.WAIT, ['k'], 'e1');
    const ac = new AbortController();
    const b = o.enter(Kind.WAIT, ['k'], 'e2');
    const p = b.ready(Infinity, ac.signal);
    ac.abort(new Error('caller gave up'));
    assert.equal(await state(p), 'caller gave up');
    b.leave();
    a.leave();
    assert.equal(o.byKey.size, 0);
    assert.equal(o.pending.size, 0);
  });
});
