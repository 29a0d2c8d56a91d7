// A minimal PostgreSQL client for the tests only (the package itself
// depends on no database library): one connection, trust authentication,
// the extended query protocol with text parameters and text results.
// query(text, values) resolves to { rows, rowCount } like pg's.

import { connect } from 'node:net';

export class PgConnection {
  static open({ host = '127.0.0.1', port, user = 'postgres', database = 'postgres' }) {
    const c = new PgConnection();
    return c.#start(host, port, user, database);
  }

  #sock; #buf = Buffer.alloc(0); #waiters = []; #queue = Promise.resolve();

  #start(host, port, user, database) {
    return new Promise((resolve, reject) => {
      this.#sock = connect({ host, port }, () => {
        const params = Buffer.from(`user\0${user}\0database\0${database}\0\0`);
        const head = Buffer.alloc(8);
        head.writeInt32BE(8 + params.length, 0);
        head.writeInt32BE(196608, 4); // protocol 3.0
        this.#sock.write(Buffer.concat([head, params]));
        this.#untilReady().then(() => resolve(this), reject);
      });
      this.#sock.on('error', (e) => { reject(e); this.#fail(e); });
      this.#sock.on('data', (d) => { this.#buf = Buffer.concat([this.#buf, d]); this.#wake(); });
    });
  }

  #fail(e) { for (const w of this.#waiters.splice(0)) w.reject(e); }

  #wake() {
    while (this.#waiters.length && this.#buf.length >= 5) {
      const len = this.#buf.readInt32BE(1);
      if (this.#buf.length < 1 + len) return;
      const msg = { type: String.fromCharCode(this.#buf[0]), body: this.#buf.subarray(5, 1 + len) };
      this.#buf = this.#buf.subarray(1 + len);
      this.#waiters.shift().resolve(msg);
    }
  }

  #next() {
    return new Promise((resolve, reject) => { this.#waiters.push({ resolve, reject }); this.#wake(); });
  }

  /** Reads messages up to ReadyForQuery; returns rows, the command tag and the first error. */
  async #untilReady() {
    const out = { fields: [], rows: [], tag: '', error: null };
    for (;;) {
      const { type, body } = await this.#next();
      if (type === 'R' && body.readInt32BE(0) !== 0) throw new Error('pgwire: only trust authentication is supported');
      if (type === 'T') {
        const n = body.readInt16BE(0);
        let o = 2;
        for (let i = 0; i < n; i++) {
          const end = body.indexOf(0, o);
          out.fields.push(body.toString('utf8', o, end));
          o = end + 1 + 18;
        }
      }
      if (type === 'D') {
        const n = body.readInt16BE(0);
        let o = 2;
        const row = {};
        for (let i = 0; i < n; i++) {
          const len = body.readInt32BE(o);
          o += 4;
          row[out.fields[i]] = len < 0 ? null : body.toString('utf8', o, o + len);
          if (len > 0) o += len;
        }
        out.rows.push(row);
      }
      if (type === 'C') out.tag = body.toString('utf8', 0, body.length - 1);
      if (type === 'E' && !out.error) {
        const parts = {};
        for (let o = 0; body[o] !== 0;) {
          const end = body.indexOf(0, o + 1);
          parts[String.fromCharCode(body[o])] = body.toString('utf8', o + 1, end);
          o = end + 1;
        }
        out.error = Object.assign(new Error(`postgres: ${parts.M}`), { code: parts.C });
      }
      if (type === 'Z') return out;
    }
  }

  /** Runs one statement with text parameters; { rows, rowCount }. */
  query(text, values = []) {
    const run = async () => {
      const msg = (type, ...parts) => {
        const body = Buffer.concat(parts);
        const head = Buffer.alloc(5);
        head.write(type, 0);
        head.writeInt32BE(4 + body.length, 1);
        return Buffer.concat([head, body]);
      };
      const cstr = (s) => Buffer.from(`${s}\0`);
      const i16 = (n) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
      const i32 = (n) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
      const params = values.map((v) => {
        if (v === null || v === undefined) return i32(-1);
        const b = Buffer.from(String(v));
        return Buffer.concat([i32(b.length), b]);
      });
      this.#sock.write(Buffer.concat([
        msg('P', cstr(''), cstr(text), i16(0)),
        msg('B', cstr(''), cstr(''), i16(0), i16(values.length), ...params, i16(0)),
        msg('D', Buffer.from('P'), cstr('')),
        msg('E', cstr(''), i32(0)),
        msg('S'),
      ]));
      const r = await this.#untilReady();
      if (r.error) throw r.error;
      const n = Number(r.tag.split(' ').pop());
      return { rows: r.rows, rowCount: Number.isNaN(n) ? 0 : n, command: r.tag.split(' ')[0] };
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => {});
    return p;
  }

  close() { this.#sock.end(); }
}
