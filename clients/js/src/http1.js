// A small HTTP/1.1 client for the Connect calls: keep-alive connections
// per node, one request at a time on each (no pipelining), over node:net or
// node:tls. It is the transport's default instead of fetch because fetch
// (undici) costs several times the CPU of the whole call on Node.js 20,
// and the client shares its machine with the application (DESIGN.md,
// "The HTTP path").
//
// What it speaks: a POST with a body, answered with a Content-Length body,
// a chunked body, or a body that ends when the connection closes (HTTP/1.0
// and error pages); 1xx answers are skipped. A connection goes back to the
// pool when its answer is complete and neither side asked to close it.
// Limits: answer headers 64 KiB, an answer body 64 MiB, idle connections
// 256 per node, each kept 60 s (the node's own idle timeout is 2 min). A
// request written on a reused connection that the server closed before
// any answer byte (it timed the connection out at that moment) is sent once
// more on a new one: every call the client makes carries a request id or
// is a read, so that is safe.

'use strict';

const net = require('node:net');
const tls = require('node:tls');

/** Most bytes of an answer's status line and headers. */
const MAX_HEADER_BYTES = 64 * 1024;
/** Most bytes of an answer's body. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Most idle connections kept per node. */
const MAX_IDLE_PER_ORIGIN = 256;
/** How long an idle connection is kept, ms. */
const IDLE_TIMEOUT_MS = 60_000;

const CRLF2 = Buffer.from('\r\n\r\n');

/** The error of an attempt that ran out of time (the transport tells it by its name, as fetch's). */
function timeoutError() {
  const e = new Error('attempt timed out');
  e.name = 'TimeoutError';
  return e;
}

/** Errors look like fetch's: a TypeError whose cause says what went wrong. */
const failed = (what, cause) => new TypeError(what, { cause });

/** The parts of a base URL ("http://host:port/prefix") a connection needs. */
function parseOrigin(base) {
  const u = new URL(base);
  const secure = u.protocol === 'https:';
  const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return {
    key: `${u.protocol}//${u.host}`, secure, hostname, port: Number(u.port || (secure ? 443 : 80)),
    hostHeader: u.host, prefix: u.pathname.replace(/\/+$/, ''),
  };
}

class Pool {
  /**
   * @param {object} o
   * @param {string} o.headers header lines sent with every request besides
   *   host, content-type and content-length, each ending in \r\n (checked
   *   by the caller: no CR or LF inside)
   * @param {object} [o.tls] node:tls connect options (ca, cert, key,
   *   servername, minVersion) for https endpoints
   */
  constructor({ headers, tls: tlsOptions }) {
    this.headers = headers;
    this.tls = tlsOptions ?? null;
    this.origins = new Map(); // base URL -> parsed origin
    this.idle = new Map(); // origin key -> Conn[] (a stack: the warmest on top)
    this.sweeper = null;
    this.closed = false;
  }

  /**
   * Sends one POST and resolves with { status, headers, body } (headers:
   * lower-case name -> value; body: a Buffer). ctl.cancel is set to a
   * function that ends the request with the reason given; timeoutMs bounds
   * the whole attempt (connecting included) and rejects with a TimeoutError.
   *
   * @param {string} base "http://host:port" (an endpoint as the transport keeps it)
   * @param {string} path "/raftlock.v1.LockService/Acquire"
   * @param {string} contentType
   * @param {string | Uint8Array} body
   * @param {number} timeoutMs
   * @param {{cancel: ((reason: unknown) => void) | null}} ctl
   * @param {string} [extra] header lines of this request alone ("name: value\r\n")
   */
  request(base, path, contentType, body, timeoutMs, ctl, extra = '') {
    let o = this.origins.get(base);
    if (o === undefined) this.origins.set(base, (o = parseOrigin(base)));
    const head = `POST ${o.prefix}${path} HTTP/1.1\r\nhost: ${o.hostHeader}\r\ncontent-type: ${contentType}\r\n${this.headers}${extra}`
      + `content-length: ${typeof body === 'string' ? Buffer.byteLength(body) : body.length}\r\n\r\n`;
    // One write, so one segment on the wire for a small call.
    const data = typeof body === 'string' ? head + body : Buffer.concat([Buffer.from(head, 'latin1'), body]);
    return new Promise((resolve, reject) => {
      const req = new Request(data, resolve, reject);
      req.timer = setTimeout(() => req.fail(timeoutError()), timeoutMs);
      ctl.cancel = (reason) => req.fail(reason);
      try {
        this.send(o, req, true);
      } catch (e) {
        req.fail(e);
      }
    });
  }

  /** Puts req on an idle connection to o (when allowed) or a new one. */
  send(o, req, mayReuse) {
    let conn = null;
    const stack = mayReuse ? this.idle.get(o.key) : undefined;
    while (stack?.length) {
      const c = stack.pop();
      if (c.usable()) {
        conn = c;
        break;
      }
    }
    conn ??= new Conn(this, o, this.connect(o));
    conn.start(req);
  }

  connect(o) {
    let socket;
    if (o.secure) {
      if (this.tls === null) throw failed('request failed', new Error(`${o.key}: https endpoint but no TLS options`));
      socket = tls.connect({
        ...this.tls, host: o.hostname, port: o.port, ALPNProtocols: ['http/1.1'],
        servername: this.tls.servername ?? (net.isIP(o.hostname) ? undefined : o.hostname),
      });
    } else {
      socket = net.connect({ host: o.hostname, port: o.port });
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 15_000);
    return socket;
  }

  /** A connection whose answer is complete and may carry the next request. */
  release(conn) {
    if (this.closed) return conn.destroy();
    let stack = this.idle.get(conn.origin.key);
    if (stack === undefined) this.idle.set(conn.origin.key, (stack = []));
    if (stack.length >= MAX_IDLE_PER_ORIGIN) return conn.destroy();
    conn.idleSince = performance.now();
    conn.socket.unref();
    stack.push(conn);
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => this.sweep(), IDLE_TIMEOUT_MS / 6);
      this.sweeper.unref();
    }
  }

  /** Closes connections idle for longer than IDLE_TIMEOUT_MS (the oldest are at the bottom). */
  sweep() {
    const old = performance.now() - IDLE_TIMEOUT_MS;
    for (const stack of this.idle.values()) {
      let n = 0;
      while (n < stack.length && (stack[n].idleSince < old || !stack[n].usable())) n++;
      for (const c of stack.splice(0, n)) c.destroy();
    }
  }

  /** Closes the idle connections; connections in use close when their answer is in. */
  close() {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const stack of this.idle.values()) for (const c of stack.splice(0)) c.destroy();
  }
}

/** One request in flight. */
class Request {
  constructor(data, resolve, reject) {
    this.data = data;
    this.resolve = resolve;
    this.reject = reject;
    this.timer = null;
    this.conn = null;
    this.settled = false;
  }

  done(v) {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(v);
  }

  /** Ends the request with err, closing its connection (an answer half read cannot be resumed). */
  fail(err) {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    const c = this.conn;
    this.conn = null;
    if (c !== null) {
      c.req = null;
      c.destroy();
    }
    this.reject(err);
  }
}

// Answer parsing states.
const HEAD = 0;
const LENGTH = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_END = 4;
const TRAILER = 5;
const UNTIL_CLOSE = 6;

/** One keep-alive connection and the parser of its answers. */
class Conn {
  constructor(pool, origin, socket) {
    this.pool = pool;
    this.origin = origin;
    this.socket = socket;
    this.req = null;
    this.used = false; // has carried a complete exchange
    this.dead = false;
    this.idleSince = 0;
    this.resetParser();
    socket.on('data', (d) => this.onData(d));
    socket.on('error', (e) => this.onEnd(e));
    socket.on('close', () => this.onEnd(null));
    socket.on('end', () => this.onEnd(null));
  }

  resetParser() {
    this.state = HEAD;
    this.buf = null; // unparsed bytes
    this.got = 0; // answer bytes received
    this.status = 0;
    this.headers = null;
    this.keepAlive = true;
    this.left = 0; // bytes left of the body or chunk
    this.parts = [];
    this.size = 0;
  }

  usable() { return !this.dead && !this.socket.destroyed && this.req === null; }

  start(req) {
    this.req = req;
    req.conn = this;
    this.resetParser();
    this.socket.ref();
    this.socket.write(req.data);
  }

  destroy() {
    this.dead = true;
    this.socket.destroy();
  }

  onEnd(err) {
    const wasDead = this.dead;
    this.dead = true;
    const req = this.req;
    if (req === null) {
      if (!wasDead) this.socket.destroy();
      return;
    }
    if (this.state === UNTIL_CLOSE && err === null) {
      this.finish();
      return;
    }
    this.req = null;
    req.conn = null;
    this.socket.destroy();
    if (this.used && this.got === 0 && !req.settled) {
      // The server closed a reused connection as the request reached it:
      // send it once more on a new connection.
      try {
        this.pool.send(this.origin, req, false);
      } catch (e) {
        req.fail(e);
      }
      return;
    }
    req.fail(failed(this.got === 0 ? 'request failed' : 'response aborted', err ?? new Error('connection closed before the answer was complete')));
  }

  protocolError(msg) {
    this.req?.fail(failed('bad response', new Error(`${this.origin.key}: ${msg}`)));
  }

  onData(d) {
    if (this.req === null) {
      // Bytes nobody asked for: the connection cannot be trusted.
      this.destroy();
      return;
    }
    this.got += d.length;
    this.buf = this.buf === null ? d : Buffer.concat([this.buf, d]);
    while (this.req !== null && this.buf !== null && this.buf.length > 0) {
      if (!this.step()) return;
    }
  }

  /** Parses what it can of this.buf; false when it needs more bytes. */
  step() {
    const b = this.buf;
    switch (this.state) {
      case HEAD: {
        const end = b.indexOf(CRLF2);
        if (end < 0) {
          if (b.length > MAX_HEADER_BYTES) this.protocolError('answer headers too large');
          return false;
        }
        if (end > MAX_HEADER_BYTES) {
          this.protocolError('answer headers too large');
          return false;
        }
        this.take(end + 4);
        return this.head(b.toString('latin1', 0, end));
      }
      case LENGTH: {
        const n = Math.min(this.left, b.length);
        this.parts.push(n === b.length ? b : b.subarray(0, n));
        this.take(n);
        this.left -= n;
        if (this.left === 0) this.finish();
        return true;
      }
      case CHUNK_SIZE: {
        const eol = b.indexOf('\r\n');
        if (eol < 0) {
          if (b.length > 1024) this.protocolError('chunk size line too long');
          return false;
        }
        const line = b.toString('latin1', 0, eol);
        const hex = line.split(';', 1)[0].trim();
        if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) {
          this.protocolError(`bad chunk size ${JSON.stringify(line)}`);
          return false;
        }
        this.left = parseInt(hex, 16);
        this.take(eol + 2);
        if (this.left === 0) {
          this.state = TRAILER;
        } else {
          if (!this.grow(this.left)) return false;
          this.state = CHUNK_DATA;
        }
        return true;
      }
      case CHUNK_DATA: {
        const n = Math.min(this.left, b.length);
        this.parts.push(n === b.length ? b : b.subarray(0, n));
        this.take(n);
        this.left -= n;
        if (this.left === 0) this.state = CHUNK_END;
        return true;
      }
      case CHUNK_END: {
        if (b.length < 2) return false;
        if (b[0] !== 13 || b[1] !== 10) {
          this.protocolError('chunk not followed by CRLF');
          return false;
        }
        this.take(2);
        this.state = CHUNK_SIZE;
        return true;
      }
      case TRAILER: {
        const eol = b.indexOf('\r\n');
        if (eol < 0) {
          if (b.length > MAX_HEADER_BYTES) this.protocolError('trailers too large');
          return false;
        }
        this.take(eol + 2);
        if (eol === 0) this.finish(); // the empty line after the trailers
        return true;
      }
      default: { // UNTIL_CLOSE
        if (!this.grow(b.length)) return false;
        this.parts.push(b);
        this.take(b.length);
        return true;
      }
    }
  }

  take(n) {
    this.buf = n >= this.buf.length ? null : this.buf.subarray(n);
  }

  /** Counts n more body bytes; false (and the request failed) past the limit. */
  grow(n) {
    this.size += n;
    if (this.size <= MAX_BODY_BYTES) return true;
    this.protocolError(`answer body larger than ${MAX_BODY_BYTES} bytes`);
    return false;
  }

  /** Reads the status line and headers; sets how the body is framed. */
  head(text) {
    // "HTTP/1.1 200 OK": the version's minor digit at 7, the status at 9-11.
    const digits = text.slice(9, 12);
    if (!text.startsWith('HTTP/1.') || (text[7] !== '0' && text[7] !== '1') || text[8] !== ' ' || !/^[1-9]\d\d$/.test(digits)) {
      this.protocolError(`not an HTTP/1.x answer: ${JSON.stringify(text.slice(0, 80))}`);
      return false;
    }
    const status = Number(digits);
    if (status < 200) return true; // informational: the real answer follows
    const headers = Object.create(null);
    let eol = text.indexOf('\r\n');
    while (eol !== -1) {
      const start = eol + 2;
      eol = text.indexOf('\r\n', start);
      const end = eol === -1 ? text.length : eol;
      const colon = text.indexOf(':', start);
      if (colon <= start || colon >= end) continue;
      const name = text.slice(start, colon).toLowerCase();
      const value = text.slice(colon + 1, end).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    this.status = status;
    this.headers = headers;
    const conn = (headers.connection ?? '').toLowerCase();
    this.keepAlive = text[7] === '1' ? !conn.includes('close') : conn.includes('keep-alive');
    const te = (headers['transfer-encoding'] ?? '').toLowerCase();
    if (status === 204 || status === 304) {
      this.finish();
    } else if (te.includes('chunked')) {
      this.state = CHUNK_SIZE;
    } else if (headers['content-length'] !== undefined) {
      if (!/^\d{1,15}$/.test(headers['content-length'])) {
        this.protocolError(`bad content-length ${JSON.stringify(headers['content-length'])}`);
        return false;
      }
      this.left = Number(headers['content-length']);
      if (!this.grow(this.left)) return false;
      this.state = LENGTH;
      if (this.left === 0) this.finish();
    } else {
      this.keepAlive = false;
      this.state = UNTIL_CLOSE;
    }
    return true;
  }

  /** The answer is complete: hand it over, and the connection back to the pool. */
  finish() {
    const req = this.req;
    const parts = this.parts;
    const body = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    const answer = { status: this.status, headers: this.headers, body };
    const reuse = this.keepAlive && this.buf === null && !this.dead;
    this.req = null;
    req.conn = null;
    this.used = true;
    this.resetParser();
    if (reuse) this.pool.release(this);
    else this.destroy();
    req.done(answer);
  }
}

module.exports = { Pool, MAX_HEADER_BYTES, MAX_BODY_BYTES, MAX_IDLE_PER_ORIGIN, IDLE_TIMEOUT_MS };
