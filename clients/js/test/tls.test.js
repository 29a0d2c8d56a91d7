// TLS and bearer tokens against a real 3-node cluster whose nodes run with
// --tls-cert/--tls-key/--tls-ca, --tls-client-auth require and an
// --auth-tokens file made with `lockctl token`: the client's tls and token
// options, and the refusals a caller meets (no token, another tenant's
// keys, plain http, a foreign CA, no client certificate).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Cluster, makeCerts } from './cluster.js';
import { Code, RaftlockClient, RaftlockError, RaftlockLockingProvider } from '../index.mjs';

let cluster, tlsA;
const clients = [];

before(async () => {
  cluster = await Cluster.start(3, {
    tls: true,
    clientAuth: 'require',
    tokens: [
      { name: 'tenant-a', prefixes: ['tenant-a/'], verbs: ['acquire', 'read'] },
      { name: 'tenant-b', prefixes: ['tenant-b/'], verbs: ['acquire', 'read'] },
    ],
  });
  // What every caller of this cluster needs: the CA, and (client auth is
  // required) a client certificate.
  const { ca, clientCert, clientKey } = cluster.certs;
  tlsA = { caFile: ca, certFile: clientCert, keyFile: clientKey };
});

after(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await cluster?.stop();
});

/** A client that is closed after the file's tests. */
function client(o) {
  const c = new RaftlockClient(o);
  clients.push(c);
  return c;
}

async function withLogs(fn) {
  try {
    return await fn();
  } catch (e) {
    e.message += `\n${cluster.logs()}`;
    throw e;
  }
}

/** Asserts that promise rejects with a RaftlockError of code whose message matches re, and names no secret. */
async function rejectsWith(promise, code, re) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof RaftlockError, `${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    for (const secret of Object.values(cluster.tokens)) assert.ok(!e.message.includes(secret), `the error names a token: ${e.message}`);
    return true;
  });
}

describe('TLS and tokens', () => {
  // The happy path: https endpoints (bare host:port become https with the
  // tls option), the CA and client certificate from files, a token; acquire
  // and release through a follower, which forwards to the leader.
  it('acquires and releases over TLS with a token', () => withLogs(async () => {
    const leader = await cluster.waitLeader();
    const follower = [0, 1, 2].find((i) => i !== leader);
    const a = client({ endpoints: [cluster.nodes[follower].addr], tls: tlsA, token: cluster.tokens['tenant-a'] });
    const got = await a.acquire(['tenant-a/order-1'], { ownerId: 'worker-1', expire: 30 });
    assert.ok(got.fencingToken > 0n);
    assert.equal(got.locks[0].ownerId, 'worker-1');
    assert.equal(a.leader, cluster.endpoints[leader], 'the leader hint keeps https');
    const held = await a.getLock('tenant-a/order-1');
    assert.equal(held.fencingToken, got.fencingToken);
    assert.equal(await a.release(['tenant-a/order-1'], { ownerId: 'worker-1' }), true);
    assert.equal(await a.getLock('tenant-a/order-1'), null);
    // execute too: acquire, refresh loop, release.
    const out = await a.execute(['tenant-a/job'], async (signal, lease) => {
      assert.ok(lease.fencingToken > 0n);
      return 'done';
    }, { timeout: 2, expire: 3 });
    assert.equal(out, 'done');
    assert.equal(await a.getLock('tenant-a/job'), null);
  }));

  // The provider reads the same environment as lockctl: RAFTLOCK_TLS_CA,
  // RAFTLOCK_TLS_CERT, RAFTLOCK_TLS_KEY and RAFTLOCK_TOKEN.
  it('configures the provider from the RAFTLOCK_* environment', () => withLogs(async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      RAFTLOCK_ENDPOINTS: cluster.nodes.map((x) => x.addr).join(','),
      RAFTLOCK_TLS_CA: cluster.certs.ca, RAFTLOCK_TLS_CERT: cluster.certs.clientCert, RAFTLOCK_TLS_KEY: cluster.certs.clientKey,
      RAFTLOCK_TOKEN: cluster.tokens['tenant-a'],
    });
    let p;
    try {
      p = new RaftlockLockingProvider({}, {});
    } finally {
      for (const k of ['RAFTLOCK_ENDPOINTS', 'RAFTLOCK_TLS_CA', 'RAFTLOCK_TLS_CERT', 'RAFTLOCK_TLS_KEY', 'RAFTLOCK_TOKEN']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
    try {
      assert.equal(await p.execute('tenant-a/provider', async () => 42), 42);
    } finally {
      await p.shutdown();
    }
  }));

  // No token: unauthenticated, with a message that says what is missing,
  // and nothing is taken. An unknown token: the same code.
  it('refuses a call without a token with a clear error', () => withLogs(async () => {
    const none = client({ endpoints: cluster.endpoints, tls: tlsA });
    await rejectsWith(none.acquire(['tenant-a/no-token'], { ownerId: 'x' }), Code.Unauthenticated,
      /missing or unknown bearer token.*this client sends no token: set the token option/);
    await rejectsWith(none.getLock('tenant-a/no-token'), Code.Unauthenticated, /bearer token/);
    const wrong = client({ endpoints: cluster.endpoints, tls: tlsA, token: 'rl_not-a-token-of-this-cluster' });
    await rejectsWith(wrong.acquire(['tenant-a/no-token'], { ownerId: 'x' }), Code.Unauthenticated, /^missing or unknown bearer token$/);
    const a = client({ endpoints: cluster.endpoints, tls: tlsA, token: cluster.tokens['tenant-a'] });
    assert.equal(await a.getLock('tenant-a/no-token'), null, 'a refused acquire took the key');
  }));

  // Tenant isolation: a token limited to tenant-a/ can neither acquire,
  // release, read nor list tenant-b/ keys; a request naming keys of both
  // takes none; releaseAll of a shared owner name frees only its own
  // prefix.
  it('keeps a tenant-a token off tenant-b keys', () => withLogs(async () => {
    const a = client({ endpoints: cluster.endpoints, tls: tlsA, token: cluster.tokens['tenant-a'] });
    const b = client({ endpoints: cluster.endpoints, tls: tlsA, token: cluster.tokens['tenant-b'] });
    await rejectsWith(a.acquire(['tenant-b/stock'], { ownerId: 'shared' }), Code.PermissionDenied, /"tenant-a" may not touch key "tenant-b\/stock"/);
    await rejectsWith(a.acquire(['tenant-a/stock', 'tenant-b/stock'], { ownerId: 'shared' }), Code.PermissionDenied, /tenant-b\/stock/);
    assert.equal(await a.getLock('tenant-a/stock'), null, 'a mixed request took its tenant-a key');

    const heldB = await b.acquire(['tenant-b/stock'], { ownerId: 'shared' });
    await a.acquire(['tenant-a/stock'], { ownerId: 'shared' });
    await rejectsWith(a.release(['tenant-b/stock'], { ownerId: 'shared' }), Code.PermissionDenied, /tenant-b\/stock/);
    await rejectsWith(a.getLock('tenant-b/stock'), Code.PermissionDenied, /tenant-b\/stock/);
    await rejectsWith(a.listLocks({ prefix: 'tenant-b/' }), Code.PermissionDenied, /may list only under/);
    assert.equal(await a.releaseAll({ ownerId: 'shared' }), 1, 'releaseAll freed more than the tenant-a lock');
    const still = await b.getLock('tenant-b/stock');
    assert.equal(still?.fencingToken, heldB.fencingToken, 'tenant-b\'s lock did not survive tenant-a\'s releaseAll');
    assert.equal(await b.release(['tenant-b/stock'], { ownerId: 'shared' }), true);
  }));

  // Transport refusals: plain http to a TLS port; a token over http:// is
  // refused before anything is sent; a server certificate from another CA
  // and a missing client certificate fail the handshake.
  it('refuses plain http, a foreign CA and a missing client certificate', () => withLogs(async () => {
    const plain = client({ endpoints: cluster.nodes.map((x) => `http://${x.addr}`), retryTimeout: 1000 });
    await assert.rejects(plain.getLock('tenant-a/x'), (e) => {
      assert.ok(e instanceof RaftlockError);
      assert.match(e.message, /HTTP request to an HTTPS server/);
      return true;
    });
    assert.throws(() => new RaftlockClient({ endpoints: [`http://${cluster.nodes[0].addr}`], token: cluster.tokens['tenant-a'] }),
      /plain http, but a token \(a bearer secret\) needs https/);

    const other = makeCerts(cluster.lockctl, join(cluster.dir, 'other-ca'));
    const foreign = client({ endpoints: cluster.endpoints, tls: { caFile: other.ca }, token: cluster.tokens['tenant-a'], retryTimeout: 1000 });
    await rejectsWith(foreign.getLock('tenant-a/x'), Code.Unavailable, /(UNABLE_TO_VERIFY|SELF_SIGNED|CERT)/);

    const noCert = client({ endpoints: cluster.endpoints, tls: { caFile: cluster.certs.ca }, token: cluster.tokens['tenant-a'], retryTimeout: 1000 });
    await rejectsWith(noCert.getLock('tenant-a/x'), Code.Unavailable, /request failed|socket hang up|ECONNRESET|certificate/i);
  }));

  it('checks the tls and token options', () => {
    assert.throws(() => new RaftlockClient({ tls: {} }), /tls\.ca or tls\.caFile/);
    assert.throws(() => new RaftlockClient({ tls: { caFile: cluster.certs.ca, certFile: cluster.certs.clientCert } }), /tls\.cert and tls\.key go together/);
    assert.throws(() => new RaftlockClient({ tls: { caFile: cluster.certs.ca, cafile: 'x' } }), /tls\.cafile is not an option/);
    assert.throws(() => new RaftlockClient({ tls: { caFile: cluster.certs.ca }, fetch }), /tls or fetch, not both/);
    assert.throws(() => new RaftlockClient({ token: '' }), /token must be a non-empty string/);
    assert.throws(() => new RaftlockClient({ token: 'a\nb' }), /on one line/);
    // With tls and no endpoints: the default node over https.
    const d = new RaftlockClient({ tls: { caFile: cluster.certs.ca } });
    assert.deepEqual(d.transport.endpoints, ['https://127.0.0.1:7070']);
    d.close();
  });
});
