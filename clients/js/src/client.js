// RaftlockClient: the raftlock LockService from Node.js, with execute.

'use strict';

const { randomUUID } = require('node:crypto');
const { Code, LockLostError, RaftlockError, TIMED_OUT_MESSAGE, busyMessage } = require('./errors.js');
const { Transport } = require('./transport.js');
const { KeyOrder, Kind } = require('./order.js');
const { tlsAgentOptions } = require('./tls.js');
const { runWithFence } = require('./fence.js');
const { watch } = require('./watch.js');

const LOCK = '/raftlock.v1.LockService/';

// Marks the internal calls that free what an execute held; they still go
// out after close().
const CLEANUP = Symbol('cleanup');
// Tells execute each request id its acquire uses (a cancelled wait is
// re-issued under a new one).
const ON_REQUEST_ID = Symbol('onRequestId');

/** Defaults of RaftlockClient options (times in milliseconds). */
const DEFAULTS = Object.freeze({
  endpoints: ['http://127.0.0.1:7070'],
  requestTimeout: 5000,
  retryTimeout: 15000,
  namespace: '',
});

/** Defaults of execute (times in seconds, like the locking module). */
const EXECUTE_DEFAULTS = Object.freeze({ timeout: 5, expire: 60 });

/** Most a waiting Acquire may wait (the server's limit), in seconds. */
const MAX_WAIT_SECONDS = 3600;

/** Seconds as a google.protobuf.Duration in JSON ("1.5s"). */
function durationJSON(seconds, field) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
    throw new RaftlockError(Code.InvalidArgument, `${field}: ${seconds} is not a number of seconds >= 0`);
  }
  return `${seconds.toFixed(9).replace(/\.?0+$/, '')}s`;
}

/** The wire names of the lock modes (LockMode in lock.proto). */
const MODES = Object.freeze({ exclusive: 'LOCK_MODE_EXCLUSIVE', shared: 'LOCK_MODE_SHARED', semaphore: 'LOCK_MODE_SEMAPHORE' });
const MODE_NAMES = Object.freeze({ LOCK_MODE_SHARED: 'shared', LOCK_MODE_SEMAPHORE: 'semaphore' });
/** The most permits a semaphore key may have (the server's limit). */
const MAX_SEMAPHORE_LIMIT = 1000;

/**
 * The wire fields of the mode options (mode, permits, limit) of an acquire
 * or execute, checked as the server checks them, naming the field.
 */
function modeFields(o, ownerId) {
  const out = {};
  const { mode, permits, limit } = o;
  if (mode === undefined || mode === null) {
    if (permits !== undefined || limit !== undefined) {
      throw new RaftlockError(Code.InvalidArgument, `${permits !== undefined ? 'permits' : 'limit'}: only for mode "semaphore"`);
    }
    return out;
  }
  if (!Object.hasOwn(MODES, mode)) {
    throw new RaftlockError(Code.InvalidArgument, `mode: ${JSON.stringify(mode)} is not one of "exclusive", "shared", "semaphore"`);
  }
  out.mode = MODES[mode];
  if (mode !== 'semaphore') {
    if (permits !== undefined || limit !== undefined) {
      throw new RaftlockError(Code.InvalidArgument, `${permits !== undefined ? 'permits' : 'limit'}: only for mode "semaphore", not ${JSON.stringify(mode)}`);
    }
  } else {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SEMAPHORE_LIMIT) {
      throw new RaftlockError(Code.InvalidArgument, `limit: the semaphore's number of permits, an integer from 1 to ${MAX_SEMAPHORE_LIMIT} (got ${limit})`);
    }
    out.limit = limit;
    if (permits !== undefined) {
      if (!Number.isInteger(permits) || permits < 1 || permits > limit) {
        throw new RaftlockError(Code.InvalidArgument, `permits: an integer from 1 to the limit ${limit} (got ${permits})`);
      }
      out.permits = permits;
    }
  }
  if (mode !== 'exclusive' && !ownerId) {
    throw new RaftlockError(Code.InvalidArgument, `ownerId: required for mode "${mode}" (each holder is told apart by its owner)`);
  }
  return out;
}

/** "1.5s" to seconds. */
function seconds(d) {
  if (typeof d !== 'string' || !d.endsWith('s')) return null;
  return Number(d.slice(0, -1));
}

class RaftlockClient {
  /**
   * @param {import('../index.js').ClientOptions} [options]
   */
  constructor(options = {}) {
    const o = { ...DEFAULTS, ...stripUndefined(options) };
    if (typeof o.endpoints === 'string') o.endpoints = o.endpoints.split(',');
    for (const f of ['requestTimeout', 'retryTimeout']) {
      if (typeof o[f] !== 'number' || !(o[f] > 0)) throw new TypeError(`raftlock: ${f} must be a positive number of milliseconds`);
    }
    if (typeof o.namespace !== 'string') throw new TypeError('raftlock: namespace must be a string');
    this.namespace = o.namespace;
    const headers = { ...o.headers };
    if (o.token !== undefined) {
      if (typeof o.token !== 'string' || o.token.trim() === '' || /[\r\n]/.test(o.token)) {
        throw new TypeError('raftlock: token must be a non-empty string on one line');
      }
      headers.authorization = `Bearer ${o.token.trim()}`;
    }
    let tls;
    if (o.tls !== undefined) {
      if (o.fetch !== undefined) throw new TypeError('raftlock: give tls or fetch, not both (a custom fetch brings its own TLS)');
      tls = tlsAgentOptions(o.tls);
      // The default endpoint, over TLS.
      if (options.endpoints === undefined) o.endpoints = ['127.0.0.1:7070'];
    }
    const why = [o.tls !== undefined && 'the tls option', o.token !== undefined && 'a token (a bearer secret)'].filter(Boolean).join(' and ');
    this.transport = new Transport({
      endpoints: o.endpoints, requestTimeout: o.requestTimeout, retryTimeout: o.retryTimeout,
      fetch: o.fetch, tls, headers, https: why !== '', httpsWhy: why, hasToken: o.token !== undefined,
    });
    this.leases = new Set();
    if (o.ordered !== undefined && typeof o.ordered !== 'boolean') throw new TypeError('raftlock: ordered must be a boolean');
    this.order = o.ordered ? new KeyOrder() : null;
  }

  /** The base URL of the leader the last answer named, or null. */
  get leader() { return this.transport.leader; }

  // ---- keys ----

  #toKeys(keys) {
    const list = listOf(keys);
    if (list.length === 0) throw new RaftlockError(Code.InvalidArgument, 'keys: at least one key is required');
    return list.map((k) => {
      if (typeof k !== 'string') throw new RaftlockError(Code.InvalidArgument, `keys: ${JSON.stringify(k)} is not a string`);
      return this.namespace + k;
    });
  }

  #fromKey(k) {
    return this.namespace && k.startsWith(this.namespace) ? k.slice(this.namespace.length) : k;
  }

  #lock(l) {
    return {
      key: this.#fromKey(l.key ?? ''),
      ownerId: l.ownerId ?? '',
      fencingToken: BigInt(l.fencingToken ?? 0),
      expiresIn: l.expiresIn === undefined ? null : seconds(l.expiresIn),
      waiters: l.waiters ?? 0,
      mode: MODE_NAMES[l.mode] ?? 'exclusive',
      limit: l.limit ?? 0,
      holders: (l.holders ?? []).map((h) => ({
        ownerId: h.ownerId ?? '',
        fencingToken: BigInt(h.fencingToken ?? 0),
        expiresIn: h.expiresIn === undefined ? null : seconds(h.expiresIn),
        slots: h.slots ?? [],
      })),
      slots: l.slots ?? [],
    };
  }

  /** Rewrites a busy error so it names the caller's key, without namespace. */
  #busyError(err, wireKeys) {
    if (err.code !== Code.Aborted) return err;
    const m = /^Failed to acquire lock for key (".*")$/s.exec(err.message);
    if (!m) return err;
    let key = null;
    try {
      key = JSON.parse(m[1]);
    } catch {
      key = wireKeys.find((k) => m[1].includes(k)) ?? null;
    }
    if (key === null) return err;
    const userKey = this.#fromKey(key);
    return new RaftlockError(Code.Aborted, busyMessage(userKey), { key: userKey, requestId: err.requestId });
  }

  async #call(method, body, o) {
    const { msg } = await this.transport.call(LOCK + method, body, o);
    return msg;
  }

  // ---- LockService ----

  /**
   * Takes every key, all or nothing. See index.d.ts.
   */
  async acquire(keys, o = {}) {
    const wireKeys = this.#toKeys(keys);
    modeFields(o, o.ownerId);
    const wait = o.waitTimeout ?? 0;
    if (wait) durationJSON(wait, 'waitTimeout');
    const waitUntil = performance.now() + wait * 1000;
    return this.#inOrder(wait > 0 ? Kind.WAIT : Kind.FAST, keys, o.ownerId, wait > 0 ? waitUntil : Infinity, o.signal,
      () => this.#acquire(wireKeys, o, wait > 0, waitUntil));
  }

  /**
   * Runs call once every earlier call it must follow has its answer (with
   * the ordered option; see order.js), waiting at most until deadline.
   */
  async #inOrder(kind, keys, ownerId, deadline, signal, call) {
    if (this.order === null) return call();
    const t = this.order.enter(kind, keys === null ? null : listOf(keys), ownerId ?? '');
    try {
      const admitted = t.ready(deadline, signal);
      if (admitted !== null) await admitted;
      return await call();
    } finally {
      t.leave();
    }
  }

  /** One Acquire, retried as one request (see index.d.ts), waiting until waitUntil if wait. */
  async #acquire(wireKeys, o, wait, waitUntil) {
    const body = { keys: wireKeys, ownerId: o.ownerId ?? '', ...modeFields(o, o.ownerId) };
    if (o.expire) body.expire = durationJSON(o.expire, 'expire');
    let requestId = o.requestId ?? randomUUID();
    for (;;) {
      body.requestId = requestId;
      o[ON_REQUEST_ID]?.(requestId);
      const leftMs = wait ? Math.max(0, waitUntil - performance.now()) : 0;
      if (wait) body.waitTimeout = durationJSON(Math.max(0.001, leftMs / 1000), 'waitTimeout');
      let retried = false;
      try {
        const msg = await this.#call('Acquire', body, {
          signal: o.signal, extraTime: leftMs, tries: true, onAttempt: (a) => { retried = a > 0; },
        });
        return {
          fencingToken: BigInt(msg.fencingToken ?? 0),
          locks: (msg.locks ?? []).map((l) => this.#lock(l)),
          requestId: msg.requestId ?? requestId,
        };
      } catch (e) {
        if (!(e instanceof RaftlockError)) throw e;
        e.requestId ??= requestId;
        // A retry of a waiting Acquire whose first attempt the server saw
        // cancelled answers canceled: nothing is held, ask again anew.
        if (e.code === Code.Canceled && retried && o.requestId === undefined) {
          if (performance.now() >= waitUntil) {
            throw new RaftlockError(Code.DeadlineExceeded, TIMED_OUT_MESSAGE, { requestId });
          }
          requestId = randomUUID();
          continue;
        }
        throw this.#busyError(e, wireKeys);
      }
    }
  }

  /** Frees keys held by ownerId; true if every key was held and is now free. */
  async release(keys, o = {}) {
    const body = { keys: this.#toKeys(keys), ownerId: o.ownerId ?? '', requestId: o.requestId ?? randomUUID() };
    if (o.fencingToken !== undefined && o.fencingToken !== null) body.fencingToken = String(o.fencingToken);
    const send = async () => (await this.#call('Release', body, { signal: o.signal, cleanup: o[CLEANUP] })).released === true;
    // What an execute frees on its way out is not a new call: it skips the order.
    return o[CLEANUP] ? send() : this.#inOrder(Kind.RELEASE, keys, o.ownerId, Infinity, o.signal, send);
  }

  /** Frees every lock of ownerId (the empty owner: every anonymous lock). */
  async releaseAll(o = {}) {
    const body = { ownerId: o.ownerId ?? '', requestId: o.requestId ?? randomUUID() };
    return this.#inOrder(Kind.RELEASE, null, o.ownerId, Infinity, o.signal,
      async () => (await this.#call('ReleaseAll', body, { signal: o.signal })).releasedCount ?? 0);
  }

  /** Extends locks ownerId still holds. */
  async refresh(keys, o = {}) {
    const body = { keys: this.#toKeys(keys), ownerId: o.ownerId ?? '', requestId: o.requestId ?? randomUUID() };
    if (o.expire) body.expire = durationJSON(o.expire, 'expire');
    const msg = await this.#call('Refresh', body, { signal: o.signal });
    return (msg.locks ?? []).map((l) => this.#lock(l));
  }

  /** Describes one key, or null when it is free (linearizable). */
  async getLock(key, o = {}) {
    const [k] = this.#toKeys([key]);
    const msg = await this.#call('GetLock', { key: k }, { signal: o.signal });
    return msg.lock ? this.#lock(msg.lock) : null;
  }

  /**
   * Whether fencingToken is still key's current grant (linearizable: one
   * leader-verified read, no log entry). See index.d.ts.
   */
  async checkFence(key, fencingToken, o = {}) {
    const [k] = this.#toKeys([key]);
    let t;
    try {
      t = BigInt(fencingToken);
    } catch {
      throw new RaftlockError(Code.InvalidArgument, `fencingToken: ${String(fencingToken)} is not an integer`);
    }
    if (t <= 0n) throw new RaftlockError(Code.InvalidArgument, 'fencingToken: required (tokens are never 0)');
    const msg = await this.#call('CheckFence', { key: k, fencingToken: t.toString() }, { signal: o.signal });
    return { current: msg.current === true, lock: msg.lock ? this.#lock(msg.lock) : null };
  }

  /** Lists held locks under the namespace, by key prefix and/or owner. */
  async listLocks(o = {}) {
    const body = { prefix: this.namespace + (o.prefix ?? '') };
    if (o.ownerId !== undefined && o.ownerId !== null) Object.assign(body, { ownerId: o.ownerId, ownerFilter: true });
    if (o.limit) body.limit = o.limit;
    if (o.pageToken) body.pageToken = o.pageToken;
    const msg = await this.#call('ListLocks', body, { signal: o.signal });
    return { locks: (msg.locks ?? []).map((l) => this.#lock(l)), nextPageToken: msg.nextPageToken ?? '' };
  }

  /** What became of a request id. */
  async getRequestOutcome(requestId, o = {}) {
    const msg = await this.#call('GetRequestOutcome', { requestId }, { signal: o.signal });
    return this.#outcome(msg.outcome);
  }

  /** Withdraws a waiting Acquire; returns its outcome afterwards. */
  async cancelAcquire(requestId, o = {}) {
    const msg = await this.#call('CancelAcquire', { requestId }, { signal: o.signal, cleanup: o[CLEANUP] });
    return this.#outcome(msg.outcome);
  }

  #outcome(out = {}) {
    return {
      state: (out.state ?? 'REQUEST_STATE_UNSPECIFIED').replace(/^REQUEST_STATE_/, '').toLowerCase(),
      kind: out.kind ?? '',
      keys: (out.keys ?? []).map((k) => this.#fromKey(k)),
      ownerId: out.ownerId ?? '',
      fencingToken: BigInt(out.fencingToken ?? 0),
      fencingTokens: (out.fencingTokens ?? []).map((t) => BigInt(t)),
      released: out.released === true,
      releasedCount: out.releasedCount ?? 0,
      errorCode: out.errorCode ?? '',
      errorMessage: out.errorMessage ?? '',
    };
  }

  // ---- execute ----

  /**
   * Runs job while holding every key: acquire with a fresh owner (waiting up
   * to timeout seconds), renew every expire/3 seconds, release in all cases.
   * See index.d.ts.
   */
  async execute(keys, job, o = {}) {
    if (typeof job !== 'function') throw new TypeError('raftlock: job must be a function');
    const timeout = clampTimeout(o.timeout);
    const expire = o.expire ?? EXECUTE_DEFAULTS.expire;
    if (typeof expire !== 'number' || !(expire >= 0)) throw new TypeError('raftlock: expire must be a number of seconds >= 0');
    const wireKeys = this.#toKeys(keys);
    const ownOwner = o.ownerId === undefined;
    const ownerId = o.ownerId ?? `execute-${randomUUID()}`;
    const mode = { mode: o.mode, permits: o.permits, limit: o.limit };
    modeFields(mode, ownerId);
    const deadline = performance.now() + timeout * 1000;
    const ticket = this.order?.enter(Kind.WAIT, listOf(keys), ownerId);
    let requestId, sentAt, granted;
    try {
      const admitted = ticket?.ready(deadline, o.signal);
      if (admitted) await admitted;
      sentAt = performance.now();
      granted = await this.#acquire(wireKeys, {
        ownerId, expire, ...mode, signal: o.signal, [ON_REQUEST_ID]: (id) => { requestId = id; },
      }, true, deadline);
      // The timeout bounds the wait: a grant that lands after it is handed
      // back and the job does not run (the framework's contract). Only an
      // owner of this call's own is safe to release here.
      if (ownOwner && performance.now() > deadline) {
        await this.release(keys, { ownerId, [CLEANUP]: true, signal: AbortSignal.timeout(this.transport.retryTimeout) }).catch(() => {});
        throw new RaftlockError(Code.DeadlineExceeded, TIMED_OUT_MESSAGE, { requestId });
      }
    } catch (e) {
      // Definite refusals hold nothing, nor does a call never sent. Anything
      // else (no node answered, the caller aborted) may have left a grant or
      // a waiter behind.
      const definite = e instanceof RaftlockError && (e.code === Code.Aborted || e.code === Code.DeadlineExceeded || e.code === Code.InvalidArgument);
      if (sentAt !== undefined && !definite) await this.#abandon(keys, ownerId, requestId);
      throw e;
    } finally {
      ticket?.leave();
    }
    const lease = new Lease(this, keys, ownerId, expire, sentAt, o.signal);
    this.leases.add(lease);
    try {
      await lease.start();
      let result, failure, failed = false;
      try {
        const info = { keys: [...listOf(keys)], ownerId, fencingToken: granted.fencingToken, locks: granted.locks };
        // currentFence() inside the job (and all it starts) returns info.
        result = await runWithFence(info, () => job(lease.signal, info));
      } catch (e) {
        failed = true;
        failure = e;
      }
      lease.stop();
      if (lease.lost) throw lease.lost;
      if (failed) throw failure;
      return result;
    } finally {
      lease.stop();
      this.leases.delete(lease);
      // Bounded by the transport's retry budget (retryTimeout): no signal needed.
      await this.release(keys, { ownerId, [CLEANUP]: true }).catch(() => {});
    }
  }

  /** Best effort: withdraw a waiter and free whatever ownerId got. */
  async #abandon(keys, ownerId, requestId) {
    const signal = AbortSignal.timeout(this.transport.retryTimeout);
    await this.cancelAcquire(requestId, { signal, [CLEANUP]: true }).catch(() => {});
    await this.release(keys, { ownerId, signal, [CLEANUP]: true }).catch(() => {});
  }

  /**
   * Stops renewing every running execute (their signals abort), aborts
   * every call in flight, refuses new ones, and frees the locks the running
   * executes held (waiting at most one request timeout for that).
   */
  /**
   * Streams the changes of the locks under prefix (see index.d.ts): an
   * async iterator of snapshot, events and heartbeat updates that
   * reconnects on its own and ends when o.signal aborts or close() is
   * called.
   */
  watch(prefix = '', o = {}) {
    if (typeof prefix !== 'string') throw new RaftlockError(Code.InvalidArgument, 'prefix: must be a string');
    const req = stripUndefined({
      prefix: o.key === undefined ? this.namespace + prefix : undefined,
      key: o.key === undefined ? undefined : this.namespace + o.key,
      ownerId: o.ownerId, ownerFilter: o.ownerId === undefined ? undefined : true,
      excludeWaiters: o.excludeWaiters ? true : undefined,
      fromIndex: o.fromIndex === undefined ? undefined : BigInt(o.fromIndex).toString(),
    });
    return watch(this.transport, req, {
      signal: o.signal, fromKey: (k) => this.#fromKey(k), lock: (l) => this.#lock(l), mode: (m) => MODE_NAMES[m] ?? 'exclusive',
    });
  }

  async close() {
    if (this.closing) return this.closing;
    const leases = [...this.leases];
    for (const l of leases) l.lose(new LockLostError(`Lost the lock on ${describeKeys(l.keys)}: the raftlock client was closed, the lease is no longer renewed`));
    this.transport.close();
    const signal = AbortSignal.timeout(this.transport.requestTimeout);
    this.closing = Promise.allSettled(leases.map((l) => this.release(l.keys, { ownerId: l.ownerId, signal, [CLEANUP]: true })))
      .then(() => { this.transport.closeConnections(); });
    return this.closing;
  }
}

/** The module's rule: timeout in seconds, default 5, at least 1. */
function clampTimeout(t) {
  const v = Math.max(t ?? EXECUTE_DEFAULTS.timeout, 1);
  return Number.isNaN(v) ? 1 : Math.min(v, MAX_WAIT_SECONDS);
}

/**
 * Lease keeps an execute's locks alive and tells when they can no longer be
 * guaranteed. The client trusts its locks until (time the last successful
 * acquire or refresh was SENT) + expire - margin, by its own monotonic clock
 * (DESIGN.md section 4), margin = max(100 ms, expire / 10), at most
 * expire / 3. Past that, or as soon as a refresh is refused, the lease is
 * lost and the signal aborts with a LockLostError.
 */
class Lease {
  constructor(client, keys, ownerId, expire, sentAt, parent) {
    this.client = client;
    this.keys = keys;
    this.ownerId = ownerId;
    this.expireMs = expire * 1000;
    this.marginMs = Math.min(Math.max(100, this.expireMs / 10), this.expireMs / 3);
    this.validUntil = expire > 0 ? sentAt + this.expireMs - this.marginMs : Infinity;
    this.ac = new AbortController();
    this.signal = this.ac.signal;
    this.halt = null; // ends a refresh in flight, on stop and on loss (made with the first refresh)
    this.stopped = false;
    this.lost = null;
    // One timer at a time: until the next refresh, or (while a refresh is
    // in flight) until the lease runs out.
    this.timer = null;
    this.parent = parent ?? null;
    this.onParentAbort = parent ? () => this.lose(new LockLostError(`Lost the lock on ${describeKeys(keys)}: execute aborted by the caller`, { cause: parent.reason })) : null;
  }

  /**
   * Before the job runs. A grant that came late in its lease (a long wait:
   * the lease counts from when the acquire was sent) is renewed at once, so
   * the job starts with a full lease or not at all.
   */
  async start() {
    if (this.parent?.aborted) this.onParentAbort();
    else this.parent?.addEventListener('abort', this.onParentAbort, { once: true });
    if (this.validUntil !== Infinity && !this.lost) {
      if (this.validUntil - performance.now() < (2 * this.expireMs) / 3) {
        await this.renewOnce(true);
      }
      if (!this.lost) this.next(performance.now() + this.expireMs / 3);
    }
    if (this.lost) throw this.lost;
  }

  /**
   * Schedules the next refresh at time at, or the loss of the lease if it
   * runs out first (a refresh that failed without a refusal is tried again
   * a period later, while the lease lasts).
   */
  next(at) {
    const when = Math.min(at, this.validUntil);
    this.timer = setTimeout(() => this.tick(), Math.max(0, when - performance.now()));
  }

  tick() {
    this.timer = null;
    if (this.stopped || this.lost) return;
    const started = performance.now();
    if (started >= this.validUntil) {
      this.expired();
      return;
    }
    this.timer = setTimeout(() => this.expired(), this.validUntil - started);
    this.renewOnce(false).then(() => {
      if (this.stopped || this.lost) return;
      clearTimeout(this.timer);
      this.next(started + this.expireMs / 3);
    });
  }

  expired() {
    this.lose(new LockLostError(`Lost the lock on ${describeKeys(this.keys)}: no refresh succeeded within its lease, it may have expired`));
  }

  /**
   * One refresh, retried by the transport while the lease lasts (or, when
   * late is set, for one request timeout).
   */
  async renewOnce(late) {
    const sentAt = performance.now();
    const budget = Math.ceil(late ? this.client.transport.requestTimeout : Math.max(1, this.validUntil - sentAt));
    this.halt ??= new AbortController();
    const signal = AbortSignal.any([this.halt.signal, AbortSignal.timeout(budget)]);
    try {
      await this.client.refresh(this.keys, { ownerId: this.ownerId, expire: this.expireMs / 1000, signal });
      if (!this.stopped && !this.lost) this.validUntil = sentAt + this.expireMs - this.marginMs;
    } catch (e) {
      if (this.stopped || this.lost) return;
      if (late || (e instanceof RaftlockError && e.code === Code.FailedPrecondition)) {
        this.lose(new LockLostError(`Lost the lock on ${describeKeys(this.keys)}: the refresh was refused: ${e?.message ?? e}`, { cause: e }));
      }
      // Otherwise keep trying: the timer ends the lease when its time is up.
    }
  }

  lose(err) {
    if (this.lost || this.stopped) return;
    this.lost = err;
    clearTimeout(this.timer);
    this.halt?.abort(err);
    this.ac.abort(err);
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.parent?.removeEventListener('abort', this.onParentAbort);
    this.halt?.abort(LEASE_STOPPED);
  }
}

/** Why a refresh in flight was aborted when its execute ended (one value: no stack trace per execute). */
const LEASE_STOPPED = Object.freeze(new Error('lease stopped'));

function describeKeys(keys) {
  const list = listOf(keys);
  return list.length === 1 ? `key ${JSON.stringify(list[0])}` : `keys ${list.map((k) => JSON.stringify(k)).join(', ')}`;
}

function listOf(keys) {
  return Array.isArray(keys) ? keys : [keys];
}

function stripUndefined(o) {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined));
}

module.exports = { DEFAULTS, EXECUTE_DEFAULTS, MAX_WAIT_SECONDS, durationJSON, RaftlockClient, clampTimeout };
