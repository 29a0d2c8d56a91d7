// The Connect unary JSON protocol over fetch, with several endpoints,
// leader redirection and retries.
//
// One call is one POST /<service>/<method> with a JSON body. A call that
// fails with `unavailable`, a network error or an attempt timeout is sent
// again (to the leader the last answer named, else the next endpoint) with
// the very same body, so a request id in it makes the retry exactly-once on
// the server. Every other answer ends the call.

'use strict';

const { Code, RaftlockError, codeFromHTTPStatus } = require('./errors.js');

/** Response header naming the leader's host:port. */
const LEADER_HEADER = 'raftlock-leader';

/**
 * Normalises "host:port" or "http://host:port/" to "http://host:port"; a
 * bare host:port gets the scheme given ("https" when the client has TLS
 * options).
 */
function normalizeEndpoint(e, scheme = 'http') {
  if (typeof e !== 'string' || e.trim() === '') {
    throw new TypeError(`raftlock: endpoint ${JSON.stringify(e)} is not a non-empty string`);
  }
  let s = e.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) s = `${scheme}://${s}`;
  const u = new URL(s);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new TypeError(`raftlock: endpoint ${e}: only http and https are supported`);
  }
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  if (signal?.aborted) return reject(signal.reason);
  const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
  const onAbort = () => { clearTimeout(t); reject(signal.reason); };
  signal?.addEventListener('abort', onAbort, { once: true });
});

class Transport {
  /**
   * @param {object} o
   * @param {string[]} o.endpoints
   * @param {number} o.requestTimeout ms one attempt may take beyond its wait
   * @param {number} o.retryTimeout ms a call keeps retrying
   * @param {typeof fetch} [o.fetch]
   * @param {Record<string,string>} [o.headers]
   * @param {boolean} [o.https] bare host:port endpoints are https, and
   *   http:// endpoints are refused (TLS options or a token were given)
   * @param {string} [o.httpsWhy] the option that asks for https, for the error
   * @param {boolean} [o.hasToken] a bearer token is sent (for the hint on
   *   an unauthenticated answer)
   */
  constructor({ endpoints, requestTimeout, retryTimeout, fetch: f, headers, https = false, httpsWhy = '', hasToken = false }) {
    if (!Array.isArray(endpoints) || endpoints.length === 0) {
      throw new TypeError('raftlock: endpoints must be a non-empty array');
    }
    this.endpoints = [...new Set(endpoints.map((e) => normalizeEndpoint(e, https ? 'https' : 'http')))];
    if (https) {
      const plain = this.endpoints.find((e) => e.startsWith('http:'));
      if (plain) throw new TypeError(`raftlock: endpoint ${plain} is plain http, but ${httpsWhy} needs https:// (or a bare host:port)`);
    }
    this.hasToken = hasToken;
    this.requestTimeout = Math.ceil(requestTimeout);
    this.retryTimeout = Math.ceil(retryTimeout);
    this.fetch = f ?? globalThis.fetch;
    this.headers = { ...headers };
    this.leader = null; // base URL of the leader the last answer named
    this.cursor = 0; // next endpoint to try when no leader is known
    this.closed = new AbortController();
  }

  /** Aborts every call in flight and refuses new ones. */
  close() {
    this.closed.abort(new RaftlockError(Code.Canceled, 'raftlock client closed'));
  }

  /**
   * Sends one unary call and returns the decoded JSON answer.
   *
   * @param {string} path "/raftlock.v1.LockService/Acquire"
   * @param {object} body the request message (Connect JSON)
   * @param {object} [o]
   * @param {AbortSignal} [o.signal] ends the call (and every retry) early
   * @param {number} [o.extraTime] ms added to the attempt timeout and the
   *   retry budget (the wait of an Acquire)
   * @param {(attempt: number) => void} [o.onAttempt] called before each
   *   attempt (0 for the first)
   * @param {boolean} [o.cleanup] not aborted by close()
   * @returns {Promise<{msg: object, attempts: number}>}
   */
  async call(path, body, o = {}) {
    const extra = o.extraTime ?? 0;
    const giveUpAt = Date.now() + this.retryTimeout + extra;
    const payload = JSON.stringify(body);
    // Cleanup calls (releasing what an execute held) still go out after
    // close; everything else is refused or aborted by it.
    let signal = o.signal ?? new AbortController().signal;
    if (!o.cleanup) signal = AbortSignal.any([signal, this.closed.signal]);
    let last;
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw signal.reason;
      const base = this.leader ?? this.endpoints[this.cursor % this.endpoints.length];
      o.onAttempt?.(attempt);
      const timeout = Math.ceil(Math.max(1, Math.min(this.requestTimeout + extra, giveUpAt - Date.now())));
      const attemptSignal = AbortSignal.any([signal, AbortSignal.timeout(timeout)]);
      let res, text;
      try {
        res = await this.fetch(base + path, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'connect-protocol-version': '1', ...this.headers },
          body: payload,
          signal: attemptSignal,
        });
        text = await res.text();
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        // An attempt cut short by the end of the retry budget says less
        // than the failure before it (e.g. a certificate the client does
        // not trust): keep that one.
        const cutShort = e?.name === 'TimeoutError' && timeout < this.requestTimeout + extra;
        if (!cutShort || !last) last = new RaftlockError(Code.Unavailable, `${base}: ${describe(e)}`, { cause: e });
        this.failed(base);
        if (Date.now() >= giveUpAt) throw last;
        await sleep(backoff(attempt), signal);
        continue;
      }
      this.learnLeader(res.headers.get(LEADER_HEADER), base);
      if (res.ok) {
        try {
          return { msg: text === '' ? {} : JSON.parse(text), attempts: attempt + 1 };
        } catch (e) {
          throw new RaftlockError(Code.Internal, `${base}: answer is not JSON: ${describe(e)}`, { cause: e });
        }
      }
      const err = decodeError(res.status, text);
      if (err.code === Code.Unauthenticated && !this.hasToken) {
        err.message += ' (this client sends no token: set the token option)';
      }
      if (err.code !== Code.Unavailable) throw err;
      last = err;
      this.failed(base);
      if (Date.now() >= giveUpAt) throw last;
      await sleep(backoff(attempt), signal);
    }
  }

  failed(base) {
    if (this.leader === base) this.leader = null;
    if (this.endpoints[this.cursor % this.endpoints.length] === base) this.cursor++;
  }

  learnLeader(addr, base) {
    if (!addr) return;
    const scheme = base.startsWith('https:') ? 'https:' : 'http:';
    try {
      this.leader = normalizeEndpoint(`${scheme}//${addr}`);
    } catch {
      // a malformed hint is ignored; the endpoints still work
    }
  }
}

function backoff(attempt) {
  const ms = Math.min(25 * 2 ** attempt, 500);
  return ms / 2 + Math.random() * (ms / 2);
}

function describe(e) {
  if (e?.name === 'TimeoutError') return 'attempt timed out';
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e.message} (${cause})` : String(e?.message ?? e);
}

function decodeError(status, text) {
  try {
    const j = JSON.parse(text);
    if (j && typeof j.code === 'string') {
      return new RaftlockError(j.code, typeof j.message === 'string' ? j.message : j.code);
    }
  } catch {
    // not a Connect error body: fall back to the HTTP status
  }
  return new RaftlockError(codeFromHTTPStatus(status), `HTTP ${status}: ${text.slice(0, 200)}`);
}

module.exports = { LEADER_HEADER, normalizeEndpoint, Transport };
