// The protobuf binary encoding of the three calls on the hot path of a
// lock (Acquire, Release, Refresh), written out for api/raftlock/v1/
// lock.proto, so those calls can go as Connect+proto without a dependency.
// Encoders take the request as the client builds it for Connect JSON
// ({ keys, ownerId, expire: "60s", ... }); decoders return the answer in
// the shape Connect JSON gives it (uint64 as a decimal string, Duration as
// "1.5s", default values left out), so the client reads both alike. Every
// other call, and every error answer (Connect sends errors as JSON), stays
// JSON.
//
// Strings are written as UTF-8; a string that is not well-formed UTF-16
// (a lone surrogate) has no UTF-8 form, so encode returns null and the call
// goes as JSON, where the server refuses it naming the field.

'use strict';

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

// ---- encoding ----

/** Bytes of a varint of a non-negative integer below 2^53. */
function varintSize(v) {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf, pos, v) {
  while (v >= 128) {
    buf[pos++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

function writeBigVarint(buf, pos, v) {
  while (v >= 128n) {
    buf[pos++] = Number(v & 127n) | 128;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}

/**
 * A Duration "1.5s" (what client.js's durationJSON writes) as
 * [seconds, nanos], exact: no float arithmetic.
 */
function parseDuration(d) {
  const m = /^(\d+)(?:\.(\d{1,9}))?s$/.exec(d);
  if (m === null) throw new TypeError(`raftlock: ${JSON.stringify(d)} is not a duration`);
  return [Number(m[1]), m[2] === undefined ? 0 : Number(m[2].padEnd(9, '0'))];
}

/** Plans a message: a list of [field number, kind, value, size] and its total size. */
class Plan {
  constructor() {
    this.fields = [];
    this.size = 0;
  }

  /** A string field (absent when empty unless always). False if s is not well-formed. */
  string(num, s, always = false) {
    if (s === '' && !always) return true;
    if (!s.isWellFormed()) return false;
    const n = Buffer.byteLength(s);
    this.fields.push([num, 's', s, n]);
    this.size += varintSize(num << 3) + varintSize(n) + n;
    return true;
  }

  /** A google.protobuf.Duration field from "1.5s" (absent when undefined). */
  duration(num, d) {
    if (d === undefined) return;
    const [s, ns] = parseDuration(d);
    const n = (s > 0 ? 1 + varintSize(s) : 0) + (ns > 0 ? 1 + varintSize(ns) : 0);
    this.fields.push([num, 'd', [s, ns], n]);
    this.size += varintSize(num << 3) + varintSize(n) + n;
  }

  /** A uint64 field (a decimal string, number or bigint), always written (explicit presence). */
  uint64(num, v) {
    const b = BigInt(v);
    if (b < 0n || b >= 1n << 64n) throw new RangeError(`raftlock: ${v} is not a uint64`);
    const small = b < 2n ** 53n;
    let n = 1;
    for (let x = b; x >= 128n; x >>= 7n) n++;
    this.fields.push([num, small ? 'u' : 'U', small ? Number(b) : b, n]);
    this.size += varintSize(num << 3) + n;
  }

  bytes() {
    const buf = Buffer.allocUnsafe(this.size);
    let pos = 0;
    for (const [num, kind, v, n] of this.fields) {
      if (kind === 'u' || kind === 'U') {
        pos = writeVarint(buf, pos, (num << 3) | VARINT);
        pos = kind === 'u' ? writeVarint(buf, pos, v) : writeBigVarint(buf, pos, v);
        continue;
      }
      pos = writeVarint(buf, pos, (num << 3) | LEN);
      pos = writeVarint(buf, pos, n);
      if (kind === 's') {
        pos += buf.write(v, pos, n, 'utf8');
      } else { // Duration { int64 seconds = 1; int32 nanos = 2; }
        if (v[0] > 0) pos = writeVarint(buf, writeVarint(buf, pos, (1 << 3) | VARINT), v[0]);
        if (v[1] > 0) pos = writeVarint(buf, writeVarint(buf, pos, (2 << 3) | VARINT), v[1]);
      }
    }
    return buf;
  }
}

/** The keys, then the rest; null if a string is not well-formed. */
function keysPlan(keys) {
  const p = new Plan();
  for (const k of keys) if (!p.string(1, k, true)) return null;
  return p;
}

/** AcquireRequest: keys 1, owner_id 2, expire 3, wait_timeout 4, request_id 5. */
function encodeAcquire(b) {
  const p = keysPlan(b.keys);
  if (p === null || !p.string(2, b.ownerId ?? '')) return null;
  p.duration(3, b.expire);
  p.duration(4, b.waitTimeout);
  if (!p.string(5, b.requestId ?? '')) return null;
  return p.bytes();
}

/** ReleaseRequest: keys 1, owner_id 2, request_id 3, optional fencing_token 4. */
function encodeRelease(b) {
  const p = keysPlan(b.keys);
  if (p === null || !p.string(2, b.ownerId ?? '') || !p.string(3, b.requestId ?? '')) return null;
  if (b.fencingToken !== undefined) p.uint64(4, b.fencingToken);
  return p.bytes();
}

/** RefreshRequest: keys 1, owner_id 2, expire 3, request_id 4. */
function encodeRefresh(b) {
  const p = keysPlan(b.keys);
  if (p === null || !p.string(2, b.ownerId ?? '')) return null;
  p.duration(3, b.expire);
  if (!p.string(4, b.requestId ?? '')) return null;
  return p.bytes();
}

// ---- decoding ----

class Reader {
  constructor(buf, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  more() { return this.pos < this.end; }

  byte() {
    if (this.pos >= this.end) throw new TypeError('truncated message');
    return this.buf[this.pos++];
  }

  /** A varint below 2^53 as a number (larger: a TypeError; see uint64). */
  varint() {
    let v = 0;
    for (let shift = 1; ; shift *= 128) {
      const b = this.byte();
      v += (b & 127) * shift;
      if (b < 128) {
        if (v > Number.MAX_SAFE_INTEGER) throw new TypeError('varint out of range');
        return v;
      }
      if (shift > 2 ** 49) throw new TypeError('varint out of range');
    }
  }

  /** A uint64 varint as its decimal string, exact over the whole range. */
  uint64() {
    const start = this.pos;
    let n = 0;
    while (this.byte() >= 128) {
      if (++n >= 10) throw new TypeError('varint too long');
    }
    if (n < 7) { // at most 49 bits: a number is exact
      this.pos = start;
      return String(this.varint());
    }
    let v = 0n;
    for (let i = this.pos - 1; i >= start; i--) v = (v << 7n) | BigInt(this.buf[i] & 127);
    return String(BigInt.asUintN(64, v));
  }

  /** A length-delimited field's [start, end). */
  span() {
    const n = this.varint();
    if (n > this.end - this.pos) throw new TypeError('truncated message');
    const s = this.pos;
    this.pos += n;
    return [s, this.pos];
  }

  string() {
    const [s, e] = this.span();
    return this.buf.toString('utf8', s, e);
  }

  skip(type) {
    switch (type) {
      case VARINT: this.uint64(); return;
      case I64: this.pos += 8; break;
      case LEN: this.span(); return;
      case I32: this.pos += 4; break;
      default: throw new TypeError(`unsupported wire type ${type}`);
    }
    if (this.pos > this.end) throw new TypeError('truncated message');
  }
}

/** A Duration message as Connect JSON writes it ("1.5s", "-0.25s"). */
function durationString(r) {
  const [s, e] = r.span();
  const d = new Reader(r.buf, s, e);
  let sec = 0n;
  let ns = 0;
  while (d.more()) {
    const tag = d.varint();
    if (tag === ((1 << 3) | VARINT)) sec = BigInt.asIntN(64, BigInt(d.uint64()));
    else if (tag === ((2 << 3) | VARINT)) ns = Number(BigInt.asIntN(32, BigInt(d.uint64())));
    else d.skip(tag & 7);
  }
  const neg = sec < 0n || ns < 0;
  const frac = ns === 0 ? '' : `.${String(Math.abs(ns)).padStart(9, '0').replace(/0+$/, '')}`;
  return `${neg ? '-' : ''}${sec < 0n ? -sec : sec}${frac}s`;
}

/** Lock: key 1, owner_id 2, fencing_token 3, expires_in 4, waiters 5. */
function lock(r) {
  const [s, e] = r.span();
  const m = new Reader(r.buf, s, e);
  const out = {};
  while (m.more()) {
    const tag = m.varint();
    switch (tag) {
      case (1 << 3) | LEN: out.key = m.string(); break;
      case (2 << 3) | LEN: out.ownerId = m.string(); break;
      case (3 << 3) | VARINT: out.fencingToken = m.uint64(); break;
      case (4 << 3) | LEN: out.expiresIn = durationString(m); break;
      case (5 << 3) | VARINT: out.waiters = m.varint() >>> 0; break;
      default: m.skip(tag & 7);
    }
  }
  return out;
}

/** AcquireResponse: fencing_token 1, locks 2, request_id 3. */
function decodeAcquire(buf) {
  const r = new Reader(buf);
  const out = {};
  while (r.more()) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | VARINT: out.fencingToken = r.uint64(); break;
      case (2 << 3) | LEN: (out.locks ??= []).push(lock(r)); break;
      case (3 << 3) | LEN: out.requestId = r.string(); break;
      default: r.skip(tag & 7);
    }
  }
  return out;
}

/** ReleaseResponse: released 1. */
function decodeRelease(buf) {
  const r = new Reader(buf);
  const out = {};
  while (r.more()) {
    const tag = r.varint();
    if (tag === ((1 << 3) | VARINT)) out.released = r.varint() !== 0;
    else r.skip(tag & 7);
  }
  return out;
}

/** RefreshResponse: locks 1. */
function decodeRefresh(buf) {
  const r = new Reader(buf);
  const out = {};
  while (r.more()) {
    const tag = r.varint();
    if (tag === ((1 << 3) | LEN)) (out.locks ??= []).push(lock(r));
    else r.skip(tag & 7);
  }
  return out;
}

/** The calls that go as Connect+proto: method -> { encode, decode }. */
const CODECS = Object.freeze({
  Acquire: Object.freeze({ encode: encodeAcquire, decode: decodeAcquire }),
  Release: Object.freeze({ encode: encodeRelease, decode: decodeRelease }),
  Refresh: Object.freeze({ encode: encodeRefresh, decode: decodeRefresh }),
});

module.exports = { CODECS, parseDuration };
