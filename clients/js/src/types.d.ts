// Type declarations for @raftlock/locking (hand-written; the package is
// plain JavaScript with no runtime dependencies, Node.js >= 20.3). Its two
// entries, index.d.ts (require) and index.d.mts (import), re-export these and
// add the default export. They need no @types/node: AbortSignal is the
// standard one (lib "dom" or @types/node), and nothing else of Node.js is named.

/** Connect code names as they appear in RaftlockError.code, plus "lock_lost". */
export type ErrorCode =
  | 'canceled' | 'unknown' | 'invalid_argument' | 'deadline_exceeded' | 'not_found'
  | 'already_exists' | 'permission_denied' | 'resource_exhausted' | 'failed_precondition'
  | 'aborted' | 'out_of_range' | 'unimplemented' | 'internal' | 'unavailable' | 'data_loss'
  | 'unauthenticated' | 'lock_lost';

export declare const Code: Readonly<{
  Canceled: 'canceled'; Unknown: 'unknown'; InvalidArgument: 'invalid_argument';
  DeadlineExceeded: 'deadline_exceeded'; NotFound: 'not_found'; AlreadyExists: 'already_exists';
  PermissionDenied: 'permission_denied'; ResourceExhausted: 'resource_exhausted';
  FailedPrecondition: 'failed_precondition'; Aborted: 'aborted'; OutOfRange: 'out_of_range';
  Unimplemented: 'unimplemented'; Internal: 'internal'; Unavailable: 'unavailable';
  DataLoss: 'data_loss'; Unauthenticated: 'unauthenticated'; LockLost: 'lock_lost';
}>;

/** "Timed-out acquiring lock." */
export declare const TIMED_OUT_MESSAGE: string;
/** `Failed to acquire lock for key "<key>"` */
export declare function busyMessage(key: string): string;

/**
 * Every error of the client. `code` is the server's Connect code
 * ("aborted": a key is busy; "deadline_exceeded": the wait timed out;
 * "failed_precondition": not held / stale fencing token; "invalid_argument";
 * "canceled": a waiting acquire was withdrawn; "unavailable": no node
 * answered, or the outcome is unknown; "resource_exhausted": a limit;
 * "unauthenticated": no token or an unknown one; "permission_denied": the
 * token does not allow this verb or key).
 */
export declare class RaftlockError extends Error {
  constructor(code: ErrorCode | string, message: string, extra?: { requestId?: string; cause?: unknown; key?: string });
  readonly code: ErrorCode | string;
  /** The request id of the failed call, when it had one (ask getRequestOutcome). */
  readonly requestId?: string;
  /** For "aborted": the busy key, without the namespace. */
  readonly key?: string;
}

/**
 * The lease of an execute could no longer be guaranteed (code "lock_lost").
 * The message starts with "Lost the lock"; type is "conflict" (the framework's
 * MedusaError type, so its error handler answers 409).
 */
export declare class LockLostError extends RaftlockError {
  constructor(message: string, extra?: { cause?: unknown });
  readonly type: 'conflict';
}

/**
 * TLS towards nodes started with --tls-cert/--tls-key/--tls-ca. PEM contents
 * (ca, cert, key) or file paths (caFile, certFile, keyFile, read once when
 * the client is made); give one of each pair, not both.
 */
export interface TLSOptions {
  /** The CA bundle that signed the nodes' certificates (e.g. certs/ca.crt of `lockctl certs`). Required. */
  ca?: string | Uint8Array | Array<string | Uint8Array>;
  caFile?: string;
  /** A client certificate and its key, for nodes with --tls-client-auth require (or verify-if-given). */
  cert?: string | Uint8Array;
  certFile?: string;
  key?: string | Uint8Array;
  keyFile?: string;
  /** The name to check the node certificates against. Default: each endpoint's host. */
  servername?: string;
}

/** The part of fetch the client uses (globalThis.fetch is one). */
export type FetchLike = (url: string, init: {
  method: string;
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}) => Promise<{ ok: boolean; status: number; headers: { get(name: string): string | null }; text(): Promise<string> }>;

export interface ClientOptions {
  /** Nodes to call: "http://host:port", "https://host:port" or "host:port" (https when tls or token is set). Any node works; the leader is learnt from answers. Default ["http://127.0.0.1:7070"] (https with tls); a comma-separated string is accepted. */
  endpoints?: string[] | string;
  /**
   * Speak TLS, trusting this CA (and presenting a client certificate if
   * given), on the client's own connections (node:tls); not combinable with fetch.
   */
  tls?: TLSOptions;
  /**
   * Bearer token for nodes with --auth-tokens (`lockctl token` makes one).
   * Sent as "authorization: Bearer <token>"; http:// endpoints are then
   * refused, so the secret never crosses the network in clear.
   */
  token?: string;
  /** Milliseconds one HTTP attempt may take beyond the wait it asks for. Default 5000. */
  requestTimeout?: number;
  /** Milliseconds a call keeps retrying (unavailable, network errors), beyond its wait. Default 15000. */
  retryTimeout?: number;
  /** Prefix added to every key on the wire and removed from keys in answers. Default "". */
  namespace?: string;
  /**
   * A fetch to send every call through, instead of the client's own
   * keep-alive HTTP/1.1 connections. Not combinable with tls.
   */
  fetch?: FetchLike;
  /** Extra request headers (e.g. authorization for a proxy in front of the nodes). */
  headers?: Record<string, string>;
  /**
   * Send this client's calls for a key in the order they were issued: a call
   * waits, within its own timeout, until the earlier calls on its keys have
   * their answers (clients/js/DESIGN.md). Default false; the locking
   * provider always sets it.
   */
  ordered?: boolean;
}

/**
 * How keys are held (docs/modes.md): one holder ("exclusive", the default),
 * any number of "shared" holders and no exclusive one (the two sides of a
 * read-write lock), or a "semaphore" of `limit` permits.
 */
export type LockMode = 'exclusive' | 'shared' | 'semaphore';

/** The mode options of acquire and execute. */
export interface ModeOptions {
  /** Default "exclusive". "shared" and "semaphore" need an ownerId (execute always has one). */
  mode?: LockMode;
  /** Semaphore only: permits to take on each key, 1 to limit. Default 1. */
  permits?: number;
  /** Semaphore only, required: the key's number of permits, 1 to 1000; every request on the key names the same. */
  limit?: number;
}

/** One holder of a shared or semaphore key (getLock, listLocks). */
export interface Holder {
  ownerId: string;
  fencingToken: bigint;
  expiresIn: number | null;
  /** A semaphore hold's slots, one per permit. */
  slots: number[];
}

export interface Lock {
  key: string;
  /** "" for an anonymous lock; in getLock and listLocks, "" for a shared or semaphore key (see holders). */
  ownerId: string;
  fencingToken: bigint;
  /** Seconds left in cluster time; null when the lock never expires. */
  expiresIn: number | null;
  /** Acquires waiting in this key's queue. */
  waiters: number;
  /** How the key is held. */
  mode: LockMode;
  /** A semaphore's limit; 0 for the other modes. */
  limit: number;
  /** A shared or semaphore key's holders in grant order (getLock and listLocks); [] otherwise. */
  holders: Holder[];
  /** The caller's semaphore slots on this key (acquire, execute): a resource fences a semaphore per key and slot. */
  slots: number[];
}

export interface AcquireResult {
  /** The highest fencing token among the keys. */
  fencingToken: bigint;
  /** One per key, in key order. */
  locks: Lock[];
  requestId: string;
}

export interface RequestOutcome {
  /** "unspecified" means not remembered (never seen, or aged out after 5 minutes). */
  state: 'unspecified' | 'pending' | 'succeeded' | 'failed' | 'cancelled';
  kind: string;
  keys: string[];
  ownerId: string;
  fencingToken: bigint;
  fencingTokens: bigint[];
  released: boolean;
  releasedCount: number;
  errorCode: string;
  errorMessage: string;
}

/** What the job of execute is told about its locks. */
export interface Lease {
  keys: string[];
  /** The owner execute acquired with (unique per call unless given). */
  ownerId: string;
  /** Pass this to the resource you protect so it can refuse stale holders. */
  fencingToken: bigint;
  locks: Lock[];
}

export interface CallOptions {
  /** Ends the call (and its retries) early. */
  signal?: AbortSignal;
}

export interface ExecuteOptions extends CallOptions, ModeOptions {
  /** Seconds to wait for the keys. Default 5, at least 1. */
  timeout?: number;
  /** Seconds the lease lives without renewal; renewed every expire/3. Default 60; 0: never expires, never renewed. */
  expire?: number;
  /** Owner to acquire with. Default: a new unique owner per call. */
  ownerId?: string;
}

export declare const DEFAULTS: Readonly<Required<Pick<ClientOptions, 'requestTimeout' | 'retryTimeout' | 'namespace'>> & { endpoints: string[] }>;
export declare const EXECUTE_DEFAULTS: Readonly<{ timeout: number; expire: number }>;

/** What happened to a key (LockService/Watch). */
export type WatchEventKind =
  | 'acquired' | 'released' | 'expired' | 'handed_off' | 'waiter_joined' | 'waiter_left'
  | 'force_released' | 'refreshed' | 'unknown';

/** One change of one key, from one applied log entry. */
export interface WatchEvent {
  /** The Raft index of the entry. */
  index: bigint;
  /** Its cluster time, in seconds. */
  clusterTime: number;
  key: string;
  kind: WatchEventKind;
  /** How the key is (or was) held, or wanted. */
  mode: LockMode;
  /** The holder, the new holder (handed_off) or the waiter. */
  ownerId: string;
  /** 0n for waiter events. */
  fencingToken: bigint;
  /** Why a waiter left (waiter_left). */
  reason: 'timed_out' | 'cancelled' | 'abandoned' | null;
  /** Seconds: the lease from clusterTime (acquired, handed_off, refreshed; null: never expires), or the wait (waiter_joined). */
  expire: number | null;
  requestId: string;
  /** handed_off: the holder whose hold ended in the same entry. */
  previousOwnerId: string;
}

/** A key of a watch snapshot: its lock (null: free, with waiters) and its queue, first in line first. */
export interface WatchedKey {
  key: string;
  lock: Lock | null;
  /** waitLeft: seconds before the wait times out. */
  waiters: { ownerId: string; requestId: string; mode: LockMode; permits: number; waitLeft: number }[];
}

/** One step of a watch; index is the applied index it brings the watcher to. */
export type WatchUpdate =
  | { type: 'snapshot'; index: bigint; clusterTime: number; keys: WatchedKey[]; resync: boolean; reason: 'too_old' | 'restored' | null }
  | { type: 'events'; index: bigint; clusterTime: number; events: WatchEvent[] }
  | { type: 'heartbeat'; index: bigint; clusterTime: number };

export interface WatchOptions {
  /** Ends the iteration (quietly). */
  signal?: AbortSignal;
  /** Resume after this index (the index of an update seen before) instead of starting with a snapshot. */
  fromIndex?: bigint | number | string;
  /** Watch this one key instead of the prefix. */
  key?: string;
  /** Only this owner's events and keys. */
  ownerId?: string;
  /** Leave waiter events and queues out. */
  excludeWaiters?: boolean;
}

export declare class RaftlockClient {
  constructor(options?: ClientOptions);
  /** Base URL of the leader the last answer named, or null. */
  readonly leader: string | null;
  /**
   * Takes every key, all or nothing. Busy and no waitTimeout: RaftlockError
   * "aborted" `Failed to acquire lock for key "<key>"`. The wait timed out:
   * "deadline_exceeded" `Timed-out acquiring lock.`
   */
  acquire(keys: string | string[], options?: CallOptions & ModeOptions & {
    ownerId?: string;
    /** Seconds; absent or 0: never expires. */
    expire?: number;
    /** Seconds to wait in the FIFO queue; absent or 0: fail at once. */
    waitTimeout?: number;
    /** Default: a new UUID. Given explicitly, a "canceled" answer is returned rather than re-issued. */
    requestId?: string;
  }): Promise<AcquireResult>;
  /** True only if every key was held by ownerId and is now free. With fencingToken: "failed_precondition" unless it is still current. */
  release(keys: string | string[], options?: CallOptions & { ownerId?: string; fencingToken?: bigint | string | number; requestId?: string }): Promise<boolean>;
  /** Frees every lock of ownerId (""/absent: every anonymous lock); returns how many. */
  releaseAll(options?: CallOptions & { ownerId?: string; requestId?: string }): Promise<number>;
  /** Extends held locks; "failed_precondition" if any is no longer held by ownerId. expire in seconds (absent: each lock's own). */
  refresh(keys: string | string[], options?: CallOptions & { ownerId?: string; expire?: number; requestId?: string }): Promise<Lock[]>;
  /** The lock on key, or null when free. Linearizable. */
  getLock(key: string, options?: CallOptions): Promise<Lock | null>;
  /**
   * Whether fencingToken is still key's current grant: held under exactly
   * that token, lease not run out. lock is the key's lock now (holder,
   * current token), null when free. Linearizable: costs one leader-verified
   * read (a ReadIndex round), no log entry. A resource that keeps the
   * highest token it has seen (claimRow) needs no round trip; use this
   * where it cannot, or before an irreversible act.
   */
  checkFence(key: string, fencingToken: bigint | string | number, options?: CallOptions): Promise<{ current: boolean; lock: Lock | null }>;
  /** Held locks under the namespace, by key prefix and/or owner, in key order. */
  listLocks(options?: CallOptions & { prefix?: string; ownerId?: string; limit?: number; pageToken?: string }): Promise<{ locks: Lock[]; nextPageToken: string }>;
  getRequestOutcome(requestId: string, options?: CallOptions): Promise<RequestOutcome>;
  /** Withdraws a waiting acquire; a grant that came first stands and is returned. */
  cancelAcquire(requestId: string, options?: CallOptions): Promise<RequestOutcome>;
  /**
   * Runs job holding every key, renewing the lease, releasing in all cases;
   * resolves with the job's result. The signal aborts (reason: LockLostError)
   * when the lease can no longer be guaranteed; execute then rejects with
   * that LockLostError once the job has settled.
   */
  execute<T>(keys: string | string[], job: (signal: AbortSignal, lease: Lease) => Promise<T> | T, options?: ExecuteOptions): Promise<T>;
  /** Aborts running executes' signals, frees their keys, aborts calls in flight, refuses new calls. */
  /**
   * Streams the changes of the locks under prefix (Connect JSON streaming,
   * any node): a snapshot first (unless fromIndex), then events in log
   * order and heartbeats. Reconnects on its own from the last index (no
   * event twice, none lost); a snapshot with resync: true replaces what you
   * knew. Ends when the signal aborts or the client closes; throws on a
   * refusal (invalid_argument, permission_denied, unauthenticated).
   */
  watch(prefix?: string, options?: WatchOptions): AsyncIterableIterator<WatchUpdate>;
  close(): Promise<void>;
}

/** "Raftlock-Fencing-Token": the HTTP header that carries a fencing token (decimal). */
export declare const FENCE_HEADER: string;

/**
 * The lease of the innermost execute whose job runs in this async context
 * (AsyncLocalStorage), or undefined outside any execute. For code called
 * from a job that gets no arguments (a framework's locking module).
 */
export declare function currentFence(): Lease | undefined;

/** Options of the row pattern: which row, which columns, which token. */
export interface FenceRowOptions {
  /** Table name, a plain identifier (schema.table allowed). */
  table: string;
  /** The column that names the row. Default "id". */
  keyColumn?: string;
  /** The BIGINT column that keeps the highest token that wrote the row. Default "fence_token". */
  tokenColumn?: string;
  /** The row's key value. */
  key: unknown;
  /** The caller's fencing token (execute's lease.fencingToken, or currentFence().fencingToken). */
  token: bigint | string | number;
  /** "$" ($1, $2: pg, postgres.js; default) or "?" (knex.raw, mysql, sqlite). */
  placeholder?: '$' | '?';
}

/** Runs one statement on one connection; resolves to a result with rowCount (pg), affectedRows, changes or count, and for a SELECT { rows } or an array. */
export type QueryFunction = (text: string, values: unknown[]) => Promise<any>;

/** The claim statement: UPDATE t SET fence_token = $1 WHERE id = $2 AND fence_token <= $1. */
export declare function claimRowSql(options: FenceRowOptions): { text: string; values: unknown[] };

/**
 * Claims the row for token inside the caller's transaction ("not lower":
 * an equal token passes, so a re-entrant holder may write again). Throws
 * FencedError when a higher token already wrote the row, NoRowError when
 * it does not exist.
 */
export declare function claimRow(query: QueryFunction, options: FenceRowOptions): Promise<void>;

/** BEGIN; claimRow; fn(query); COMMIT (ROLLBACK on any error). query must run everything on one connection. */
export declare function withFencedRow<T>(query: QueryFunction, options: FenceRowOptions, fn: (query: QueryFunction) => Promise<T> | T): Promise<T>;

/** A write was refused: a higher fencing token already wrote the row (code "fenced"). */
export declare class FencedError extends Error {
  constructor(message: string, extra?: { table?: string; key?: unknown; token?: bigint; highest?: bigint });
  readonly code: 'fenced';
  readonly table?: string;
  readonly key?: unknown;
  /** The refused token. */
  readonly token?: bigint;
  /** The token that wrote the row last. */
  readonly highest?: bigint;
}

/** The row to claim does not exist. */
export declare class NoRowError extends Error {
  constructor(message: string, extra?: { table?: string; key?: unknown });
  readonly table?: string;
  readonly key?: unknown;
}

/**
 * The options of the provider's entry in medusa-config
 * (`providers: [{ resolve: "@raftlock/locking", id: "locking-raftlock", options }]`).
 * What they leave out comes from the environment: RAFTLOCK_ENDPOINTS
 * (comma-separated), RAFTLOCK_NAMESPACE, RAFTLOCK_TOKEN, RAFTLOCK_TLS_CA
 * (+ RAFTLOCK_TLS_CERT, RAFTLOCK_TLS_KEY, file paths). With no endpoints from
 * either the app does not boot. Any other option name is refused.
 */
export type RaftlockProviderOptions = Pick<ClientOptions,
  'endpoints' | 'namespace' | 'token' | 'tls' | 'requestTimeout' | 'retryTimeout' | 'fetch' | 'headers'>;

/** What the framework hands a provider's loader (ProviderLoaderOptions of packages/core/types/src/modules-sdk/module-provider.ts). */
export interface ProviderLoaderArgs {
  container: { register(name: string, resolver: { resolve(...args: any[]): unknown }): unknown };
  logger?: { info?(message: string): unknown };
  options?: Record<string, unknown>;
  moduleOptions?: Record<string, unknown>;
}

/**
 * The provider's loader: makes the client from the entry's options (and the
 * environment) at boot, and leaves it where the provider's constructor finds it.
 */
export declare function raftlockClientLoader(args: ProviderLoaderArgs): Promise<void>;

/**
 * The Locking Module provider. The framework constructs it with
 * (cradle, moduleOptions, moduleDeclaration) after raftlockClientLoader ran;
 * by hand it takes (options) or (container, options). Its id in medusa-config
 * must be its identifier, "locking-raftlock".
 */
export declare class RaftlockLockingProvider {
  static identifier: 'locking-raftlock';
  constructor(options?: RaftlockProviderOptions);
  /** The framework's call (the JavaScript also takes (container, options) by hand). */
  constructor(cradle: object, moduleOptions: Record<string, unknown>, moduleDeclaration: unknown);
  readonly client: RaftlockClient;
  /**
   * Runs job holding every key (all or nothing), then releases them.
   * timeout: seconds to wait (default 5, at least 1); expire: seconds the
   * lease lives unrenewed (default 60, renewed every expire/3). The job gets
   * an AbortSignal that aborts when the lock can no longer be guaranteed,
   * and the lease (fencing token). Calls of one process on a key are served
   * in the order issued.
   */
  execute<T>(keys: string | string[], job: (signal: AbortSignal, lease: Lease) => Promise<T> | T, args?: ModeOptions & { timeout?: number; expire?: number; signal?: AbortSignal }, sharedContext?: unknown): Promise<T>;
  acquire(keys: string | string[], args?: ModeOptions & { ownerId?: string | null; expire?: number; awaitQueue?: boolean; timeout?: number }, sharedContext?: unknown): Promise<void>;
  release(keys: string | string[], args?: { ownerId?: string | null }, sharedContext?: unknown): Promise<boolean>;
  /** Frees every lock of ownerId; without one, every anonymous lock (never other owners'). */
  releaseAll(args?: { ownerId?: string | null }, sharedContext?: unknown): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * The package's default export: what ModuleProvider(Modules.LOCKING,
 * { services, loaders }) returns, so medusa-config can resolve the package itself.
 */
export interface RaftlockProviderModule {
  module: 'locking';
  services: [typeof RaftlockLockingProvider];
  loaders: [typeof raftlockClientLoader];
}
