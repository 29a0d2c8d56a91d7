// RaftlockLockingProvider: a locking-module provider backed by raftlock.

import { RaftlockClient, clampTimeout } from './client.js';

/**
 * A provider for a framework's locking module (the interface of its
 * in-memory and Redis providers: execute, acquire, release, releaseAll),
 * backed by a raftlock cluster.
 *
 * Constructed by the framework as `new RaftlockLockingProvider(container,
 * options)`, or by hand as `new RaftlockLockingProvider(options)`.
 */
export class RaftlockLockingProvider {
  static identifier = 'locking-raftlock';

  constructor(...args) {
    // The framework passes (container, options); by hand it is (options).
    const options = (args.length >= 2 ? args[1] : args[0]) ?? {};
    const env = process.env;
    const endpoints = options.endpoints ?? env.RAFTLOCK_ENDPOINTS?.split(',');
    // TLS and the token default to the environment lockctl reads too.
    const token = options.token ?? (env.RAFTLOCK_TOKEN || undefined);
    let tls = options.tls;
    if (tls === undefined && options.fetch === undefined && env.RAFTLOCK_TLS_CA) {
      tls = { caFile: env.RAFTLOCK_TLS_CA };
      if (env.RAFTLOCK_TLS_CERT || env.RAFTLOCK_TLS_KEY) Object.assign(tls, { certFile: env.RAFTLOCK_TLS_CERT, keyFile: env.RAFTLOCK_TLS_KEY });
    }
    this.client = new RaftlockClient({ ...options, endpoints, token, tls });
    this.closed = false;
  }

  /**
   * Runs job while holding every key. The job receives an AbortSignal that
   * aborts when the lease is lost. timeout: seconds to wait for the keys
   * (default 5, at least 1); expire: seconds the lease lives without renewal
   * (default 60, renewed every expire/3).
   */
  async execute(keys, job, args = {}) {
    this.#check();
    return this.client.execute(keys, job, {
      timeout: clampTimeout(args?.timeout), expire: args?.expire, signal: args?.signal,
    });
  }

  /**
   * Takes every key for ownerId (anonymous when absent), or throws
   * `Failed to acquire lock for key "<key>"` at once when one is busy.
   * expire: seconds (absent: never expires). awaitQueue: wait in the FIFO
   * queue up to timeout seconds (default 5) instead of failing at once.
   */
  async acquire(keys, args = {}) {
    this.#check();
    await this.client.acquire(keys, {
      ownerId: args?.ownerId ?? '',
      expire: args?.expire,
      waitTimeout: args?.awaitQueue ? clampTimeout(args?.timeout) : 0,
    });
  }

  /** Frees keys held by ownerId; true only if every key was held and is now free. */
  async release(keys, args = {}) {
    this.#check();
    return this.client.release(keys, { ownerId: args?.ownerId ?? '' });
  }

  /** Frees every lock of ownerId (absent: every anonymous lock). */
  async releaseAll(args = {}) {
    this.#check();
    await this.client.releaseAll({ ownerId: args?.ownerId ?? '' });
  }

  /**
   * Stops renewing the leases of running executes (their signals abort),
   * cancels calls in flight, and refuses new calls.
   */
  async shutdown() {
    if (this.closed) return;
    this.closed = true;
    await this.client.close();
  }

  #check() {
    if (this.closed) throw new Error('raftlock: the locking provider was shut down');
  }
}
