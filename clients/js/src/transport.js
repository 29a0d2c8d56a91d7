// The Connect unary JSON protocol over HTTP/1.1 (http1.js, or a fetch the
// caller gives), with several endpoints, leader redirection and retries.
//
// One call is one POST /<service>/<method> with a JSON body. A call that
// fails with `unavailable`, a network error or an attempt timeout is sent
// again (to the leader the last answer named, else the next endpoint) with
// the very same body, so a request id in it makes the retry exactly-once on
// the server. Every other answer ends the call.

'use strict';

const { Code, RaftlockError, codeFromHTTPStatus } = require('./errors.js');
const { Pool } = require('./http1.js');

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

/** Header names and values the client may send (RFC 9110 tokens; no CR, LF or NUL in values). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[^\r\n\0]*$/;

/** The header lines every call sends, checked, for http1.js. */
function headerBlock(headers) {
  let block = 'connect-protocol-version: 1\r\n';
  for (const [k, v] of Object.entries(headers)) {
    if (!HEADER_NAME.test(k)) throw new TypeError(`raftlock: headers: ${JSON.stringify(k)} is not a header name`);
    if (/^(host|content-length|content-type|connect-protocol-version|transfer-encoding|connection|raftlock-attempt)$/i.test(k)) {
      throw new TypeError(`raftlock: headers: ${k} is set by the client`);
    }
    const value = String(v);
    if (!HEADER_VALUE.test(value)) throw new TypeError(`raftlock: headers: the value of ${k} holds a line break`);
    block += `${k}: ${value}\r\n`;
  }
  return block;
}

/** A DOMException like the one AbortSignal.timeout aborts with. */
const fetchTimeout = () => new DOMException('The operation was aborted due to timeout', 'TimeoutError');

/**
 * One call's cancellation: the caller's signal or close() end it; an
 * attempt or a backoff in progress registers how to stop it in cancel.
 */
class CallControl {
  constructor() {
    this.aborted = false;
    this.reason = undefined;
    this.cancel = null;
  }

  abort(reason) {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const c = this.cancel;
    this.cancel = null;
    c?.(reason);
  }

  sleep(ms) {
    return new Promise((resolve, reject) => {
      if (this.aborted) return reject(this.reason);
      const t = setTimeout(() => { this.cancel = null; resolve(); }, ms);
      this.cancel = (r) => { clearTimeout(t); reject(r); };
    });
  }
}

class Transport {
  /**
   * @param {object} o
   * @param {string[]} o.endpoints
   * @param {number} o.requestTimeout ms one attempt may take beyond its wait
   * @param {number} o.retryTimeout ms a call keeps retrying
   * @param {typeof fetch} [o.fetch] send through this instead of http1.js
   * @param {object} [o.tls] node:tls options for https endpoints (http1.js)
   * @param {Record<string,string>} [o.headers]
   * @param {boolean} [o.https] bare host:port endpoints are https, and
   *   http:// endpoints are refused (TLS options or a token were given)
   * @param {string} [o.httpsWhy] the option that asks for https, for the error
   * @param {boolean} [o.hasToken] a bearer token is sent (for the hint on
   *   an unauthenticated answer)
   */
  constructor({ endpoints, requestTimeout, retryTimeout, fetch: f, tls, headers, https = false, httpsWhy = '', hasToken = false }) {
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
    this.headers = { ...headers };
    // Without a fetch of the caller's, calls go through a pool of
    // keep-alive HTTP/1.1 connections (http1.js).
    this.fetch = f ?? null;
    this.pool = f ? null : new Pool({ headers: headerBlock(this.headers), tls });
    this.tls = tls ?? null; // for watch streams' agent (watch.js)
    this.watchAgent = null;
    this.watches = new Set(); // AbortControllers of open watches, ended by close()
    this.leader = null; // base URL of the leader the last answer named
    this.hint = null; // the raftlock-leader value (with the scheme) hintBase came from
    this.hintBase = null;
    this.cursor = 0; // next endpoint to try when no leader is known
    this.closedReason = null;
    this.inflight = new Set(); // CallControls of the calls close() aborts
  }

  /** Aborts every call in flight (but cleanup calls) and refuses new ones. */
  close() {
    if (this.closedReason !== null) return;
    this.closedReason = new RaftlockError(Code.Canceled, 'raftlock client closed');
    for (const c of this.inflight) c.abort(this.closedReason);
    this.inflight.clear();
    for (const w of this.watches) w.abort(this.closedReason);
  }

  /** Closes the pool's idle connections (after close, once cleanup calls are done). */
  closeConnections() {
    this.pool?.close();
    this.watchAgent?.destroy();
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
   * @param {boolean} [o.tries] say which try of the request this attempt is
   *   (the Raftlock-Attempt header, 1 for the first): a node that took an
   *   earlier try, and later sees it abandoned, then cannot take back what a
   *   later try was granted (Acquire)
   * @returns {Promise<{msg: object, attempts: number}>}
   */
  async call(path, body, o = {}) {
    const extra = o.extraTime ?? 0;
    const giveUpAt = Date.now() + this.retryTimeout + extra;
    const payload = JSON.stringify(body);
    const signal = o.signal;
    if (signal?.aborted) throw signal.reason;
    // Cleanup calls (releasing what an execute held) still go out after
    // close; everything else is refused or aborted by it.
    if (!o.cleanup && this.closedReason !== null) throw this.closedReason;
    const ctl = new CallControl();
    const onAbort = signal ? () => ctl.abort(signal.reason) : null;
    signal?.addEventListener('abort', onAbort, { once: true });
    if (!o.cleanup) this.inflight.add(ctl);
    try {
      return await this.#attempts(path, payload, o, extra, giveUpAt, ctl);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.inflight.delete(ctl);
    }
  }

  async #attempts(path, payload, o, extra, giveUpAt, ctl) {
    let last;
    for (let attempt = 0; ; attempt++) {
      if (ctl.aborted) throw ctl.reason;
      const base = this.leader ?? this.endpoints[this.cursor % this.endpoints.length];
      o.onAttempt?.(attempt);
      const timeout = Math.ceil(Math.max(1, Math.min(this.requestTimeout + extra, giveUpAt - Date.now())));
      const tryHeader = o.tries ? String(Math.min(attempt + 1, 255)) : '';
      let ans;
      try {
        ans = this.pool !== null
          ? await this.pool.request(base, path, 'application/json', payload, timeout, ctl, tryHeader && `raftlock-attempt: ${tryHeader}\r\n`)
          : await this.#viaFetch(base + path, payload, timeout, ctl, tryHeader);
      } catch (e) {
        if (ctl.aborted) throw ctl.reason;
        // An attempt cut short by the end of the retry budget says less
        // than the failure before it (e.g. a certificate the client does
        // not trust): keep that one.
        const cutShort = e?.name === 'TimeoutError' && timeout < this.requestTimeout + extra;
        if (!cutShort || !last) last = new RaftlockError(Code.Unavailable, `${base}: ${describe(e)}`, { cause: e });
        this.failed(base);
        if (Date.now() >= giveUpAt) throw last;
        await ctl.sleep(Math.min(backoff(attempt), giveUpAt - Date.now()));
        continue;
      } finally {
        ctl.cancel = null;
      }
      this.learnLeader(ans.headers[LEADER_HEADER], base);
      const { status } = ans;
      const text = ans.body.toString('utf8');
      if (status >= 200 && status < 300) {
        try {
          return { msg: text === '' ? {} : JSON.parse(text), attempts: attempt + 1 };
        } catch (e) {
          throw new RaftlockError(Code.Internal, `${base}: answer is not JSON: ${describe(e)}`, { cause: e });
        }
      }
      const err = decodeError(status, text);
      if (err.code === Code.Unauthenticated && !this.hasToken) {
        err.message += ' (this client sends no token: set the token option)';
      }
      if (err.code !== Code.Unavailable) throw err;
      last = err;
      this.failed(base);
      if (Date.now() >= giveUpAt) throw last;
      await ctl.sleep(Math.min(backoff(attempt), giveUpAt - Date.now()));
    }
  }

  /** One attempt through the caller's fetch, shaped as http1.js answers. */
  async #viaFetch(url, payload, timeout, ctl, tryHeader) {
    const ac = new AbortController();
    ctl.cancel = (r) => ac.abort(r);
    const timer = setTimeout(() => ac.abort(fetchTimeout()), timeout);
    try {
      const headers = { 'content-type': 'application/json', 'connect-protocol-version': '1', ...this.headers };
      if (tryHeader) headers['raftlock-attempt'] = tryHeader;
      const res = await this.fetch(url, {
        method: 'POST',
        headers,
        body: payload,
        signal: ac.signal,
      });
      const body = Buffer.from(await res.text(), 'utf8');
      return { status: res.status, headers: { [LEADER_HEADER]: res.headers.get(LEADER_HEADER) }, body };
    } finally {
      clearTimeout(timer);
    }
  }

  failed(base) {
    if (this.leader === base) this.leader = null;
    if (this.endpoints[this.cursor % this.endpoints.length] === base) this.cursor++;
  }

  learnLeader(addr, base) {
    if (!addr) return;
    const scheme = base.startsWith('https:') ? 'https:' : 'http:';
    const hint = scheme + addr;
    if (hint === this.hint) { // the answer names the leader it named before: no URL to parse
      this.leader = this.hintBase;
      return;
    }
    try {
      this.hintBase = normalizeEndpoint(`${scheme}//${addr}`);
      this.hint = hint;
      this.leader = this.hintBase;
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
