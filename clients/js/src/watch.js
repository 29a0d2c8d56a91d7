// LockService/Watch over Connect JSON streaming (HTTP/1.1, chunked), as an
// async iterator that survives node failures.
//
// A watch is one long POST whose answer is a stream of envelopes (a flags
// byte, a 4-byte big-endian length, a JSON message); the last one (flags
// 0x02) ends the stream and carries the error, if any. Streams get their
// own keep-alive agent (node:http or node:https), apart from the unary
// calls' pool (http1.js), which reads whole bodies.
//
// The iterator remembers the index of the last complete update it yielded
// and, when a stream breaks (the node died, was cut off, shut down), opens
// a new one on the next endpoint from that index: no event twice, none
// skipped. When the node no longer remembers the index, the new stream
// starts with a snapshot whose resync is true.

'use strict';

const http = require('node:http');
const https = require('node:https');
const { Code, RaftlockError } = require('./errors.js');

const WATCH = '/raftlock.v1.LockService/Watch';
/** Streams at once per node through one client. */
const MAX_STREAMS_PER_NODE = 64;
/** The largest message a stream may carry (a snapshot chunk of 500 keys). */
const MAX_MESSAGE_BYTES = 16 << 20;
/** Codes no other node (or a retry) gets past. */
const FATAL = new Set([Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated, Code.Unimplemented]);

const KIND = {
  WATCH_EVENT_KIND_ACQUIRED: 'acquired', WATCH_EVENT_KIND_RELEASED: 'released', WATCH_EVENT_KIND_EXPIRED: 'expired',
  WATCH_EVENT_KIND_HANDED_OFF: 'handed_off', WATCH_EVENT_KIND_WAITER_JOINED: 'waiter_joined', WATCH_EVENT_KIND_WAITER_LEFT: 'waiter_left',
  WATCH_EVENT_KIND_FORCE_RELEASED: 'force_released', WATCH_EVENT_KIND_REFRESHED: 'refreshed',
};
const REASON = {
  WAITER_LEFT_REASON_TIMED_OUT: 'timed_out', WAITER_LEFT_REASON_CANCELLED: 'cancelled', WAITER_LEFT_REASON_ABANDONED: 'abandoned',
};
const RESET = { WATCH_RESET_REASON_TOO_OLD: 'too_old', WATCH_RESET_REASON_RESTORED: 'restored' };

function seconds(d) {
  return d === undefined ? null : Number.parseFloat(d);
}

/** The agent streams go through, made on first use. */
function agentOf(transport) {
  if (!transport.watchAgent) {
    const o = { keepAlive: true, maxSockets: MAX_STREAMS_PER_NODE };
    transport.watchAgent = transport.tls ? new https.Agent({ ...o, ...transport.tls }) : new http.Agent(o);
  }
  return transport.watchAgent;
}

function envelope(msg) {
  const body = Buffer.from(JSON.stringify(msg));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/**
 * Opens one stream on base and yields its decoded messages; throws a
 * RaftlockError when it ends with an error, or ends quietly at a clean
 * end of stream.
 */
async function* stream(transport, base, req, signal) {
  const u = new URL(base + WATCH);
  const mod = u.protocol === 'https:' ? https : http;
  const payload = envelope(req);
  const headers = {
    ...transport.headers, 'content-type': 'application/connect+json', 'connect-protocol-version': '1',
    'content-length': String(payload.length),
  };
  const res = await new Promise((resolve, reject) => {
    const r = mod.request(u, { method: 'POST', headers, agent: agentOf(transport), signal }, resolve);
    r.on('error', reject);
    r.end(payload);
  });
  if (res.statusCode !== 200) {
    let text = '';
    for await (const c of res) text += c;
    let code = Code.Unavailable;
    let message = `${base}: HTTP ${res.statusCode}`;
    try {
      const j = JSON.parse(text);
      code = j.code ?? code;
      message = j.message ?? message;
    } catch { /* not JSON */ }
    throw new RaftlockError(code, message);
  }
  let buf = Buffer.alloc(0);
  for await (const chunk of res) {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 5) {
      const n = buf.readUInt32BE(1);
      if (n > MAX_MESSAGE_BYTES) throw new RaftlockError(Code.ResourceExhausted, `${base}: a watch message of ${n} bytes is over the limit of ${MAX_MESSAGE_BYTES}`);
      if (buf.length < 5 + n) break;
      const flags = buf[0];
      const msg = JSON.parse(buf.subarray(5, 5 + n).toString('utf8'));
      buf = buf.subarray(5 + n);
      if (flags & 0x02) {
        if (msg.error) throw new RaftlockError(msg.error.code ?? Code.Unknown, msg.error.message ?? 'watch ended with an error');
        return;
      }
      yield msg;
    }
  }
  throw new RaftlockError(Code.Unavailable, `${base}: the watch stream broke`);
}

/**
 * The iterator behind RaftlockClient.watch (see index.d.ts).
 *
 * @param {import('./transport.js').Transport} transport
 * @param {object} req the WatchRequest (namespace applied)
 * @param {{signal?: AbortSignal, fromKey: (k: string) => string}} o
 */
async function* watch(transport, req, o) {
  const ac = new AbortController();
  const onAbort = () => ac.abort(o.signal.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  transport.watches ??= new Set();
  transport.watches.add(ac);
  let from = BigInt(req.fromIndex ?? 0);
  let cursor = 0;
  let backoff = 50;
  try {
    for (;;) {
      if (ac.signal.aborted) return;
      if (transport.closedReason !== null) throw transport.closedReason;
      const base = transport.endpoints[cursor % transport.endpoints.length];
      const body = { ...req, fromIndex: from.toString() };
      let snap = null;
      try {
        for await (const m of stream(transport, base, body, ac.signal)) {
          if (ac.signal.aborted) return; // messages already read stay unread
          let u;
          if (m.snapshot) {
            const s = m.snapshot;
            snap ??= {
              type: 'snapshot', index: BigInt(s.index ?? 0), clusterTime: seconds(s.clusterTime) ?? 0,
              resync: s.resync === true, reason: RESET[s.reason] ?? null, keys: [],
            };
            for (const k of s.keys ?? []) snap.keys.push(watchedKey(k, o));
            if (s.more) continue;
            u = snap;
            snap = null;
            from = u.index;
          } else if (m.events) {
            const events = (m.events.events ?? []).map((e) => event(e, o)).filter((e) => e.index > from);
            if (events.length === 0) continue;
            const last = events[events.length - 1];
            u = { type: 'events', index: last.index, clusterTime: last.clusterTime, events };
            from = u.index;
          } else if (m.heartbeat) {
            const index = BigInt(m.heartbeat.index ?? 0);
            if (index < from) continue;
            u = { type: 'heartbeat', index, clusterTime: seconds(m.heartbeat.clusterTime) ?? 0 };
            from = index;
          } else {
            continue;
          }
          backoff = 50;
          yield u;
        }
        throw new RaftlockError(Code.Unavailable, `${base}: the watch stream ended`);
      } catch (e) {
        if (ac.signal.aborted) return;
        if (e instanceof RaftlockError && FATAL.has(e.code)) throw e;
        cursor++;
        await new Promise((r) => {
          const t = setTimeout(r, backoff * (0.5 + Math.random()));
          ac.signal.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
        });
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    transport.watches.delete(ac);
    ac.abort();
  }
}

function watchedKey(k, o) {
  return {
    key: o.fromKey(k.key ?? ''), lock: k.lock ? o.lock(k.lock) : null,
    waiters: (k.waiters ?? []).map((w) => ({
      ownerId: w.ownerId ?? '', requestId: w.requestId ?? '', mode: o.mode(w.mode), permits: w.permits ?? 0, waitLeft: seconds(w.waitLeft) ?? 0,
    })),
  };
}

function event(e, o) {
  return {
    index: BigInt(e.index ?? 0), clusterTime: seconds(e.clusterTime) ?? 0, key: o.fromKey(e.key ?? ''), mode: o.mode(e.mode),
    kind: KIND[e.kind] ?? 'unknown', ownerId: e.ownerId ?? '', fencingToken: BigInt(e.fencingToken ?? 0),
    reason: REASON[e.reason] ?? null, expire: seconds(e.expire), requestId: e.requestId ?? '',
    previousOwnerId: e.previousOwnerId ?? '',
  };
}

module.exports = { watch, MAX_STREAMS_PER_NODE, MAX_MESSAGE_BYTES };
