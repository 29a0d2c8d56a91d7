// An Acquire says which try of its request id each attempt is (the
// Raftlock-Attempt header), so that a node that took an earlier try and
// later sees it abandoned cannot take back what a later try was granted;
// other calls do not send it. Checked against an HTTP server that answers
// the first attempt "unavailable", as a node without a leader does.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { RaftlockClient } from '../index.mjs';

let server, endpoint;
const seen = [];

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      seen.push({ path: req.url, attempt: req.headers['raftlock-attempt'], requestId: JSON.parse(body).requestId });
      res.setHeader('content-type', 'application/json');
      if (seen.length === 1) {
        res.statusCode = 503;
        res.end(JSON.stringify({ code: 'unavailable', message: 'no leader reachable' }));
        return;
      }
      res.end(req.url.endsWith('/Acquire')
        ? JSON.stringify({ fencingToken: '7', locks: [{ key: 'k', ownerId: 'o', fencingToken: '7' }] })
        : JSON.stringify({ released: true }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

it('counts the tries of an Acquire in Raftlock-Attempt, and only there', async () => {
  const c = new RaftlockClient({ endpoints: [endpoint], retryTimeout: 5000 });
  try {
    await c.acquire(['k'], { ownerId: 'o' });
    await c.release(['k'], { ownerId: 'o' });
  } finally {
    await c.close();
  }
  assert.equal(seen.length, 3);
  assert.deepEqual(seen.slice(0, 2).map((s) => s.attempt), ['1', '2']);
  assert.equal(seen[0].requestId, seen[1].requestId, 'a retry keeps the request id');
  assert.equal(seen[2].attempt, undefined, 'a Release sends no try');
});
