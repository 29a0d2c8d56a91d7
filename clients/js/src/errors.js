// Errors of the raftlock client, in one place.
//
// Every error the client throws is a RaftlockError (or a subclass) whose
// `code` is the Connect code name the server answered ("aborted",
// "deadline_exceeded", ...), or "unavailable" when no node answered, or
// "lock_lost" for a lease that could no longer be guaranteed.

'use strict';

/** The message of an Acquire that found a key busy (fixed by DESIGN.md). */
function busyMessage(key) {
  return `Failed to acquire lock for key "${key}"`;
}

/** The message of a wait that timed out (fixed by DESIGN.md). */
const TIMED_OUT_MESSAGE = 'Timed-out acquiring lock.';

/** Connect code names, as they appear in `RaftlockError.code`. */
const Code = Object.freeze({
  Canceled: 'canceled',
  Unknown: 'unknown',
  InvalidArgument: 'invalid_argument',
  DeadlineExceeded: 'deadline_exceeded',
  NotFound: 'not_found',
  AlreadyExists: 'already_exists',
  PermissionDenied: 'permission_denied',
  ResourceExhausted: 'resource_exhausted',
  FailedPrecondition: 'failed_precondition',
  Aborted: 'aborted',
  OutOfRange: 'out_of_range',
  Unimplemented: 'unimplemented',
  Internal: 'internal',
  Unavailable: 'unavailable',
  DataLoss: 'data_loss',
  Unauthenticated: 'unauthenticated',
  /** Client-side: the lease of an execute could no longer be guaranteed. */
  LockLost: 'lock_lost',
});

/** An error answered by raftlock, or raised by the client on its behalf. */
class RaftlockError extends Error {
  /**
   * @param {string} code Connect code name, e.g. "aborted".
   * @param {string} message
   * @param {{requestId?: string, cause?: unknown, key?: string}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'RaftlockError';
    this.code = code;
    if (extra.requestId !== undefined) this.requestId = extra.requestId;
    if (extra.key !== undefined) this.key = extra.key;
  }
}

/**
 * The lease of an execute can no longer be guaranteed: a refresh was refused
 * (the lock expired or was taken), or no refresh succeeded before the
 * client's own conservative deadline. The job's AbortSignal aborts with this
 * error as its reason, and execute rejects with it. Its message starts with
 * "Lost the lock" and its `type` is "conflict", as for the framework's own
 * providers (MedusaError.Types.CONFLICT, packages/core/utils/src/common/errors.ts),
 * so the framework's error handler answers 409.
 */
class LockLostError extends RaftlockError {
  constructor(message, extra = {}) {
    super(Code.LockLost, message, extra);
    this.name = 'LockLostError';
    this.type = 'conflict';
  }
}

/** Maps an HTTP status without a Connect error body to a Connect code. */
function codeFromHTTPStatus(status) {
  switch (status) {
    case 400: return Code.Internal;
    case 401: return Code.Unauthenticated;
    case 403: return Code.PermissionDenied;
    case 404: return Code.Unimplemented;
    case 408: return Code.DeadlineExceeded;
    case 429: case 502: case 503: case 504: return Code.Unavailable;
    default: return Code.Unknown;
  }
}

module.exports = { busyMessage, TIMED_OUT_MESSAGE, Code, RaftlockError, LockLostError, codeFromHTTPStatus };
