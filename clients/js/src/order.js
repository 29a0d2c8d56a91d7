// KeyOrder: one process, one order. Calls that one client issues for a key
// reach the cluster in the order they were issued (clients/js/DESIGN.md,
// "One process, one order", says why and what it costs).

'use strict';

const { Code, RaftlockError, TIMED_OUT_MESSAGE, busyMessage } = require('./errors.js');

/**
 * What a call is, for the order.
 * - WAIT: an acquire that may wait in the server's queue (execute, or
 *   acquire with a wait timeout).
 * - FAST: an acquire that fails at once when a key is busy.
 * - RELEASE: release or releaseAll.
 */
const Kind = Object.freeze({ WAIT: 'wait', FAST: 'fast', RELEASE: 'release' });

/**
 * KeyOrder is a per-key FIFO in front of the cluster. A call enters it when
 * it is issued (synchronously, so entering order is issuing order) and is
 * sent only when every earlier call on one of its keys that it must follow
 * has settled, i.e. has had its answer from the cluster. Which earlier calls
 * a call follows:
 * - an acquire (WAIT or FAST) follows every earlier call on its keys;
 * - a release follows earlier FAST acquires and releases, and earlier WAIT
 *   acquires of its own non-empty owner, but not WAIT acquires of other
 *   owners: those may be waiting for this very release;
 * - a releaseAll is a release of every key;
 * - a FAST acquire does not wait behind an earlier WAIT acquire of another
 *   (or the anonymous) owner on one of its keys: in issuing order that
 *   acquire is already granted or queued there, and the server grants no key
 *   that has a queue to a newcomer, so the FAST acquire fails at once with
 *   the busy error for that key, as it would have on the server.
 * A call never follows a later one, so the FIFO cannot deadlock, and a
 * multi-key call is sent once, whole: it is never split into partial holds.
 */
class KeyOrder {
  constructor() {
    /** key -> Set of pending tickets naming it */
    this.byKey = new Map();
    /** pending releaseAll tickets (they cover every key) */
    this.everyKey = new Set();
    /** every pending ticket (what a releaseAll looks at) */
    this.pending = new Set();
  }

  /**
   * Enters a call. keys: the call's keys (null: every key, for releaseAll);
   * owner: its owner ("" anonymous). Returns a ticket; call leave() on it
   * once the call has its answer (in all cases).
   */
  enter(kind, keys, owner) {
    const t = new Ticket(this, kind, keys === null ? null : [...new Set(keys)], owner);
    const candidates = new Set(this.everyKey);
    if (t.keys === null) {
      for (const p of this.pending) candidates.add(p);
    } else {
      for (const k of t.keys) for (const p of this.byKey.get(k) ?? []) candidates.add(p);
    }
    for (const p of candidates) {
      if (kind === Kind.RELEASE && p.kind === Kind.WAIT && !(owner !== '' && p.owner === owner)) continue;
      if (kind === Kind.FAST && p.kind === Kind.WAIT && (owner === '' || p.owner !== owner)) {
        const key = [...t.keys].sort().find((k) => p.keys.includes(k));
        if (t.busyKey === null || key < t.busyKey) t.busyKey = key;
        continue;
      }
      t.after.push(p.done);
    }
    this.pending.add(t);
    if (t.keys === null) {
      this.everyKey.add(t);
    } else {
      for (const k of t.keys) {
        let s = this.byKey.get(k);
        if (!s) this.byKey.set(k, (s = new Set()));
        s.add(t);
      }
    }
    return t;
  }
}

class Ticket {
  constructor(order, kind, keys, owner) {
    this.order = order;
    this.kind = kind;
    this.keys = keys;
    this.owner = owner;
    /** the earlier calls to wait for (their done promises) */
    this.after = [];
    /** FAST only: the first key an earlier WAIT acquire of another owner claims */
    this.busyKey = null;
    this.left = false;
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
  }

  /**
   * Resolves when the call may be sent. Rejects with `Timed-out acquiring
   * lock.` (deadline_exceeded) when deadline (a performance.now() time, or
   * Infinity) passes first, with the busy error for a FAST acquire behind
   * another owner's waiting acquire, and with the signal's reason when it
   * aborts. Returns null, not a promise, when there is nothing to wait for.
   */
  ready(deadline, signal) {
    if (this.busyKey !== null) {
      return Promise.reject(new RaftlockError(Code.Aborted, busyMessage(this.busyKey), { key: this.busyKey }));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.after.length === 0) return null;
    return new Promise((resolve, reject) => {
      let timer = null;
      const finish = (fn, v) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        fn(v);
      };
      const onAbort = () => finish(reject, signal.reason);
      if (deadline !== Infinity) {
        timer = setTimeout(() => finish(reject, new RaftlockError(Code.DeadlineExceeded, TIMED_OUT_MESSAGE)),
          Math.max(0, deadline - performance.now()));
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      Promise.all(this.after).then(() => finish(resolve));
    });
  }

  /** The call has its answer: later calls need not wait for it any more. */
  leave() {
    if (this.left) return;
    this.left = true;
    const o = this.order;
    o.pending.delete(this);
    if (this.keys === null) {
      o.everyKey.delete(this);
    } else {
      for (const k of this.keys) {
        const s = o.byKey.get(k);
        s.delete(this);
        if (s.size === 0) o.byKey.delete(k);
      }
    }
    this.after = [];
    this.resolveDone();
  }
}

module.exports = { KeyOrder, Kind };
