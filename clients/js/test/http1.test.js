// The client's HTTP/1.1 connection pool (src/http1.js) against a TCP
// server on 127.0.0.1 that answers with bytes written here: the framings
// it must read (length, chunked, until close, 1xx first), answers split
// across packets, keep-alive reuse, a connection the server closed while
// idle, and its limits, timeouts and cancellation. The real node's answers
// are covered by every other test file.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { waitFor } from './cluster.js';

const require = createRequire(import.meta.url);
const { Pool, MAX_HEADER_BYTES } = require('../src/http1.js');

let server, base;
const sockets = new Set();
let connections = 0;
// What the server does with the next request it reads: (socket, request text) => void.
let answer = null;

before(async () => {
  server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      // One request: headers, then content-length bytes.
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))[1]);
      if (buf.length < end + 4 + len) return;
      const req = buf.slice(0, end + 4 + len);
      buf = buf.slice(end + 4 + len);
      answer(socket, req);
    });
    socket.on('error', () => {});
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  for (const s of sockets) s.destroy();
  server.close();
});

const pool = () => new Pool({ headers: 'x-test: 1\r\n' });
const ctl = () => ({ cancel: null });
const send = (p, body = '{"a":1}', timeout = 2000, c = ctl()) => p.request(base, '/svc/M', 'application/json', body, timeout, c);
const text = (ans) => ans.body.toString('utf8');

/** Writes parts one by one with a pause between them, so the client reads them in separate packets. */
function dribble(socket, parts) {
  let i = 0;
  const next = () => {
    if (i < parts.length) socket.write(parts[i++], () => setTimeout(next, 5));
  };
  next();
}

describe('http1 pool', () => {
  it('sends one POST with its headers and reads a content-length answer', async () => {
    let seen;
    answer = (s, req) => { seen = req; s.write('HTTP/1.1 200 OK\r\nContent-Length: 7\r\nRaftlock-Leader: 10.0.0.1:7070\r\n\r\n{"b":2}'); };
    const p = pool();
    const ans = await send(p, '{"a":"é"}');
    assert.equal(ans.status, 200);
    assert.equal(text(ans), '{"b":2}');
    assert.equal(ans.headers['raftlock-leader'], '10.0.0.1:7070');
    assert.match(seen, /^POST \/svc\/M HTTP\/1\.1\r\n/);
    assert.match(seen, /\r\nhost: 127\.0\.0\.1:\d+\r\n/);
    assert.match(seen, /\r\ncontent-type: application\/json\r\n/);
    assert.match(seen, /\r\nx-test: 1\r\n/);
    // The server reads bytes as latin1: "é" is two of them.
    assert.ok(seen.endsWith(`\r\ncontent-length: 10\r\n\r\n${Buffer.from('{"a":"é"}').toString('latin1')}`), 'content-length counts UTF-8 bytes');
    p.close();
  });

  it('reuses an idle connection, and opens one per request in flight', async () => {
    answer = (s) => setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}'), 20);
    const p = pool();
    const before = connections;
    await send(p);
    await send(p);
    assert.equal(connections - before, 1, 'two calls one after the other share one connection');
    await Promise.all([send(p), send(p), send(p)]);
    assert.equal(connections - before, 3, 'three calls at once need three connections (two new)');
    await send(p);
    assert.equal(connections - before, 3);
    p.close();
  });

  it('reads answers split anywhere, chunked bodies with trailers, and skips 1xx', async () => {
    const p = pool();
    const body = JSON.stringify({ locks: Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, ownerId: 'ö' })) });
    const bytes = Buffer.from(body);
    answer = (s) => {
      const head = Buffer.from(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: ${bytes.length}\r\n\r\n`);
      const all = Buffer.concat([head, bytes]);
      // Cut inside the status line, the CRLFCRLF, and a UTF-8 sequence.
      const cuts = [5, head.length - 2, head.length + body.indexOf('ö') + 1, all.length];
      dribble(s, cuts.map((c, i) => all.subarray(i === 0 ? 0 : cuts[i - 1], c)));
    };
    assert.equal(text(await send(p)), body);
    answer = (s) => {
      const a = bytes.subarray(0, 1000);
      const b = bytes.subarray(1000);
      dribble(s, [
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
        `${a.length.toString(16)};ext=1\r\n`, a.subarray(0, 10), Buffer.concat([a.subarray(10), Buffer.from('\r')]),
        Buffer.from(`\n${b.length.toString(16)}\r\n`), b, '\r\n0\r\n', 'X-Trailer: t\r\n', '\r\n',
      ]);
    };
    assert.equal(text(await send(p)), body);
    // The connection is still good for the next answer.
    answer = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}');
    const n = connections;
    assert.equal(text(await send(p)), '{}');
    assert.equal(connections, n);
    p.close();
  });

  it('reads an answer that ends with the connection (HTTP/1.0, connection: close) and does not reuse it', async () => {
    const p = pool();
    answer = (s) => s.end('HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n');
    const ans = await send(p);
    assert.equal(ans.status, 400);
    assert.equal(text(ans), 'Client sent an HTTP request to an HTTPS server.\n');
    answer = (s) => s.write('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy');
    const n = connections;
    assert.equal(text(await send(p)), 'busy');
    answer = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}');
    await send(p);
    assert.equal(connections, n + 2, 'each closing answer took its connection with it');
    p.close();
  });

  it('sends a request again on a new connection when the server closed the idle one it was written on', async () => {
    const p = pool();
    answer = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}');
    await send(p);
    // The server times the idle connection out just as the next request is
    // written: it reads the request and closes without an answer.
    answer = (s) => {
      answer = (s2) => s2.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"ok"');
      s.destroy();
    };
    const n = connections;
    assert.equal(text(await send(p)), '"ok"');
    assert.equal(connections, n + 1);
    // A fresh connection closed without an answer is an error, not retried.
    p.close();
    const q = pool();
    answer = (s) => s.destroy();
    await assert.rejects(send(q), (e) => e instanceof TypeError && e.message === 'request failed' && /closed/.test(e.cause.message));
    q.close();
  });

  it('fails an answer cut short, a bad framing, and headers over the limit', async () => {
    const p = pool();
    answer = (s) => { s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"a"'); setTimeout(() => s.destroy(), 10); };
    await assert.rejects(send(p), (e) => e.message === 'response aborted');
    answer = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n');
    await assert.rejects(send(p), (e) => e.message === 'bad response' && /bad content-length/.test(e.cause.message));
    answer = (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
    await assert.rejects(send(p), (e) => e.message === 'bad response' && /bad chunk size/.test(e.cause.message));
    answer = (s) => s.write('SSH-2.0-OpenSSH\r\n\r\n');
    await assert.rejects(send(p), (e) => e.message === 'bad response' && /not an HTTP\/1\.x answer/.test(e.cause.message));
    answer = (s) => s.write(`HTTP/1.1 200 OK\r\nX-Big: ${'x'.repeat(MAX_HEADER_BYTES)}\r\n`);
    await assert.rejects(send(p), (e) => e.message === 'bad response' && /headers too large/.test(e.cause.message));
    p.close();
  });

  it('times an attempt out, and ends it when cancelled, closing its connection', async () => {
    const p = pool();
    answer = () => {}; // never answers
    const t0 = performance.now();
    await assert.rejects(send(p, '{}', 100), (e) => e.name === 'TimeoutError');
    assert.ok(performance.now() - t0 >= 99, 'timed out early');
    const c = ctl();
    const pending = send(p, '{}', 5000, c);
    const reason = new Error('caller gave up');
    await waitFor('the request to be written', () => typeof c.cancel === 'function');
    const open = sockets.size;
    c.cancel(reason);
    await assert.rejects(pending, (e) => e === reason);
    await waitFor('the cancelled request\'s connection to close', () => sockets.size < open);
    p.close();
  });

  it('fails at once on a refused connection', async () => {
    const closed = createServer();
    await new Promise((ok) => closed.listen(0, '127.0.0.1', ok));
    const port = closed.address().port;
    await new Promise((ok) => closed.close(ok));
    const p = pool();
    await assert.rejects(p.request(`http://127.0.0.1:${port}`, '/x', 'application/json', '{}', 2000, ctl()),
      (e) => e instanceof TypeError && e.cause?.code === 'ECONNREFUSED');
    p.close();
  });
});
