// RaftlockLockingProvider, its loader, and the provider module the
// framework's module loader takes as the package's default export.

'use strict';

const { join } = require('node:path');
const { RaftlockClient, clampTimeout } = require('./client.js');

/** The provider's identifier; its `id` in the framework's config must be the same (see checkProviderId). */
const IDENTIFIER = 'locking-raftlock';

/** Where the loader leaves the client for the constructor, in the provider's own container. */
const CLIENT_KEY = 'raftlockLockingClient';

/** The options a provider entry may carry (every other name is refused). */
const OPTION_NAMES = Object.freeze(['endpoints', 'namespace', 'token', 'tls', 'requestTimeout', 'retryTimeout', 'fetch', 'headers']);

/**
 * The client options for a provider's own options, with the environment as
 * the fallback for what they leave out: RAFTLOCK_ENDPOINTS (comma-separated),
 * RAFTLOCK_NAMESPACE, RAFTLOCK_TOKEN, RAFTLOCK_TLS_CA (+ RAFTLOCK_TLS_CERT,
 * RAFTLOCK_TLS_KEY, file paths; the variables lockctl reads). Unlike the
 * client, the provider has no default endpoint: without one from either
 * place it refuses to start, rather than lock against a localhost nobody
 * meant.
 */
function providerClientOptions(options = {}, env = process.env) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError('raftlock locking provider: options must be an object');
  }
  for (const k of Object.keys(options)) {
    if (!OPTION_NAMES.includes(k)) throw new TypeError(`raftlock locking provider: options.${k} is not an option (${OPTION_NAMES.join(', ')})`);
  }
  let endpoints = options.endpoints ?? (env.RAFTLOCK_ENDPOINTS || undefined);
  if (typeof endpoints === 'string') endpoints = endpoints.split(',');
  if (endpoints !== undefined && !Array.isArray(endpoints)) throw new TypeError('raftlock locking provider: options.endpoints must be an array of "host:port" or URLs');
  endpoints = endpoints?.map((e) => (typeof e === 'string' ? e.trim() : e)).filter((e) => e !== '');
  if (!endpoints?.length) {
    throw new Error('raftlock locking provider: no endpoints: set options.endpoints in its providers entry of the Locking Module in medusa-config '
      + `({ resolve: "@raftlock/locking", id: "${IDENTIFIER}", options: { endpoints: ["10.0.0.1:7070", ...] } }), or RAFTLOCK_ENDPOINTS (comma-separated)`);
  }
  const namespace = options.namespace ?? env.RAFTLOCK_NAMESPACE ?? '';
  const token = options.token ?? (env.RAFTLOCK_TOKEN || undefined);
  let tls = options.tls;
  if (tls === undefined && options.fetch === undefined && env.RAFTLOCK_TLS_CA) {
    tls = { caFile: env.RAFTLOCK_TLS_CA };
    if (env.RAFTLOCK_TLS_CERT || env.RAFTLOCK_TLS_KEY) Object.assign(tls, { certFile: env.RAFTLOCK_TLS_CERT, keyFile: env.RAFTLOCK_TLS_KEY });
  }
  return { ...options, endpoints, namespace, token, tls };
}

/** The client a provider with these options talks through: calls of one process are sent in the order issued. */
function providerClient(options, env) {
  return new RaftlockClient({ ...providerClientOptions(options, env), ordered: true });
}

/**
 * The Locking Module registers a provider under its identifier and looks it
 * up by the configured id (packages/modules/locking/src/loaders/providers.ts
 * and services/locking-provider.ts), so an entry with any other id would fail
 * every call with "Could not find a locking provider with id". Say so at
 * boot instead. moduleOptions: the module's options (with its providers);
 * own: this entry's options object, or undefined when it declares none (then
 * entries that resolve to this package are checked).
 */
function checkProviderId(moduleOptions, own) {
  const entries = Array.isArray(moduleOptions?.providers) ? moduleOptions.providers : [];
  const mine = entries.filter((p) => (own !== undefined ? p?.options === own : p?.options === undefined && resolvesHere(p?.resolve)));
  for (const p of mine) {
    if (p.id !== IDENTIFIER) {
      throw new Error(`raftlock locking provider: its id must be "${IDENTIFIER}", not ${JSON.stringify(p.id)}: `
        + 'the Locking Module registers a provider under its identifier but looks it up by its id, so with another id '
        + 'every call would fail with "Could not find a locking provider with id"');
    }
  }
}

function resolvesHere(resolve) {
  if (resolve === providerModule) return true;
  if (typeof resolve !== 'string') return false;
  try {
    return require.resolve(resolve, { paths: [process.cwd()] }) === join(__dirname, '..', 'index.js');
  } catch {
    return false;
  }
}

/**
 * The provider's loader. The framework runs a provider's loaders at boot
 * with this provider's own options (load-internal.ts, runLoaders: options is
 * the entry's options and moduleOptions the module's; an entry without
 * options gets the module's options as options and no moduleOptions), while
 * it constructs the provider with the module's options. So the loader makes
 * the client, which validates every option now, and leaves it in the
 * provider's container, where the constructor finds it.
 */
async function raftlockClientLoader({ container, logger, options, moduleOptions }) {
  const own = moduleOptions === undefined ? undefined : options;
  checkProviderId(moduleOptions ?? options, own);
  const client = providerClient(own ?? {});
  // An awilix value resolver (what asValue returns), written out so the
  // package needs no dependency.
  container.register(CLIENT_KEY, { resolve: () => client, isLeakSafe: true });
  logger?.info?.(`raftlock locking provider: endpoints ${client.transport.endpoints.join(', ')}, namespace ${JSON.stringify(client.namespace)}`);
}

/**
 * A provider for the framework's Locking Module (execute, acquire, release,
 * releaseAll, shutdown), backed by a raftlock cluster.
 *
 * The framework constructs it as `new RaftlockLockingProvider(cradle,
 * moduleOptions, moduleDeclaration)` after raftlockClientLoader has left the
 * client in the cradle. By hand: `new RaftlockLockingProvider(options)` or
 * `(container, options)`.
 */
class RaftlockLockingProvider {
  static identifier = IDENTIFIER;

  constructor(...args) {
    let client;
    try {
      client = args[0]?.[CLIENT_KEY]; // an awilix cradle throws for a name it does not know
    } catch {
      client = undefined;
    }
    this.client = client instanceof RaftlockClient ? client : providerClient(ownOptions(args));
    this.closed = false;
  }

  /**
   * Runs job while holding every key. The job receives an AbortSignal that
   * aborts when the lease is lost. timeout: seconds to wait for the keys
   * (default 5, at least 1); expire: seconds the lease lives without renewal
   * (default 60, renewed every expire/3). mode ("exclusive", "shared",
   * "semaphore"), permits and limit: how to hold the keys (the Locking
   * Module hands its args to the provider unchanged).
   */
  async execute(keys, job, args = {}) {
    this.#check();
    return this.client.execute(keys, job, { timeout: args?.timeout, expire: args?.expire, signal: args?.signal, ...modeArgs(args) });
  }

  /**
   * Takes every key for ownerId (anonymous when absent), or throws
   * `Failed to acquire lock for key "<key>"` at once when one is busy.
   * expire: seconds (absent: never expires). awaitQueue: wait in the FIFO
   * queue up to timeout seconds (default 5) instead of failing at once.
   * mode, permits, limit: as for execute (shared and semaphore need an
   * ownerId).
   */
  async acquire(keys, args = {}) {
    this.#check();
    await this.client.acquire(keys, {
      ownerId: args?.ownerId ?? '',
      expire: args?.expire,
      waitTimeout: args?.awaitQueue ? clampTimeout(args?.timeout) : 0,
      ...modeArgs(args),
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

/** The mode options among a call's args (absent ones left out). */
function modeArgs(args) {
  const out = {};
  for (const k of ['mode', 'permits', 'limit']) if (args?.[k] !== undefined) out[k] = args[k];
  return out;
}

/**
 * The provider's own options when no loader ran: (options) by hand,
 * (container, options) by hand, or (cradle, moduleOptions, ...) from a
 * framework that loaded the class without its loader (a wrapper module
 * listing only the class): then they are the options of the module's
 * provider entry with this provider's id.
 */
function ownOptions(args) {
  const o = args.length >= 2 ? args[1] : args[0];
  if (!Array.isArray(o?.providers)) return o ?? {};
  const entry = o.providers.find((p) => p?.id === IDENTIFIER);
  if (!entry) {
    throw new Error(`raftlock locking provider: constructed with the Locking Module's options but no provider entry with id "${IDENTIFIER}": `
      + 'register the package itself (resolve: "@raftlock/locking") so its loader gives it its options');
  }
  return entry.options ?? {};
}

/**
 * What `ModuleProvider(Modules.LOCKING, { services, loaders })` returns
 * (packages/core/utils/src/modules-sdk/module-provider.ts), built by hand:
 * the package's default export, so `resolve: "@raftlock/locking"` needs no
 * wrapper file. Not frozen: the loader writes its discoveryPath into it
 * (load-internal.ts, resolveModuleExports).
 */
const providerModule = {
  module: 'locking',
  services: [RaftlockLockingProvider],
  loaders: [raftlockClientLoader],
};

module.exports = { RaftlockLockingProvider, raftlockClientLoader, providerModule, providerClientOptions, IDENTIFIER, CLIENT_KEY };
