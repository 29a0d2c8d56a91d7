// The package as the framework's module loader sees it: loaded through the
// framework's provider-loading steps (test/medusa/framework.js, which cites
// load-internal.ts and the Locking Module's loader line by line) from an app
// directory where it is installed, and checked on a live 3-node cluster for
// the endpoints and namespace its calls really use.
//
// Every case runs with RAFTLOCK_ENDPOINTS pointing at a recorder (an HTTP
// server that counts what it gets and refuses it) and RAFTLOCK_NAMESPACE
// set, so a provider that lost its options would show: its calls would go
// to the recorder, under the wrong namespace.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from './cluster.js';
import { loadLockingModule, quietLogger } from './medusa/framework.js';
import { makeApp } from './medusa/app.js';
import { RaftlockClient, RaftlockLockingProvider } from '../index.mjs';

let cluster, follower, raw, recorder, app;

/** An HTTP server that counts requests and answers each with a Connect invalid_argument error (not retried). */
async function startRecorder() {
  const r = { count: 0 };
  r.server = createServer((req, res) => {
    r.count++;
    req.resume();
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'invalid_argument', message: 'the recorder: this call used the environment, not the options' }));
  });
  await new Promise((ok) => r.server.listen(0, '127.0.0.1', ok));
  r.url = `http://127.0.0.1:${r.server.address().port}`;
  return r;
}

before(async () => {
  cluster = await Cluster.start(3);
  follower = (await cluster.waitLeader() + 1) % 3;
  raw = new RaftlockClient({ endpoints: cluster.endpoints });
  recorder = await startRecorder();
  process.env.RAFTLOCK_ENDPOINTS = recorder.url;
  process.env.RAFTLOCK_NAMESPACE = 'from-env:';
  app = makeApp({
    // The package's classes listed without its loaders, as the old README's
    // wrapper file did.
    'wrapper-without-loaders': "const { RaftlockLockingProvider } = require('@raftlock/locking');\n"
      + "module.exports = { default: { services: [RaftlockLockingProvider] } };\n",
    // A provider that ignores what it is constructed with (the bug of finding 1):
    // the control that shows the wire check can fail.
    'drops-options': "const { RaftlockLockingProvider } = require('@raftlock/locking');\n"
      + "class DropsOptions extends RaftlockLockingProvider { constructor() { super({}); } }\n"
      + "module.exports = { default: { services: [DropsOptions] } };\n",
    // The class itself as the default export (the bug of finding 2).
    'class-as-default': "module.exports = { default: require('@raftlock/locking').RaftlockLockingProvider };\n",
  });
});

after(async () => {
  delete process.env.RAFTLOCK_ENDPOINTS;
  delete process.env.RAFTLOCK_NAMESPACE;
  await raw?.close();
  recorder?.server.close();
  await cluster?.stop();
  if (app) rmSync(app, { recursive: true, force: true });
});

/** Successful LockService/Acquire calls node i has answered (its /metrics). */
async function acquiresAnswered(i) {
  const text = await (await fetch(`http://${cluster.nodes[i].addr}/metrics`)).text();
  const m = /^raftlock_requests_total\{code="ok",procedure="raftlock\.v1\.LockService\/Acquire"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** The Locking Module with one raftlock provider entry. */
function withEntry(entry, logger) {
  return loadLockingModule({
    app,
    logger,
    options: { providers: [{ resolve: '@raftlock/locking', id: 'locking-raftlock', is_default: true, ...entry }] },
  });
}

/**
 * Takes a key through the module's service and checks, on the cluster, that
 * the call reached node `node` and holds `namespace + key`, and that nothing
 * reached the recorder.
 */
async function assertOnTheWire(service, { node, namespace, key }) {
  const before = await acquiresAnswered(node);
  const seenByRecorder = recorder.count;
  await service.acquire(key, { ownerId: 'wire-check' });
  try {
    const held = await raw.getLock(namespace + key);
    assert.equal(held?.ownerId, 'wire-check', `${namespace + key} is held on the cluster`);
    if (namespace !== '') assert.equal(await raw.getLock(key), null, `${key} without the namespace is free`);
    assert.ok(await acquiresAnswered(node) > before, `node ${node} answered the acquire`);
    assert.equal(recorder.count, seenByRecorder, 'nothing went to RAFTLOCK_ENDPOINTS');
  } finally {
    await service.release(key, { ownerId: 'wire-check' });
  }
}

describe('the package as a Locking Module provider', () => {
  // The default export has the shape ModuleProvider(Modules.LOCKING, ...)
  // returns (packages/core/utils/src/modules-sdk/module-provider.ts, lines
  // 10-19), under require and import alike, with the same classes.
  it('default-exports { module, services, loaders } for require and import', () => {
    // In a process of its own started in the app: the package found by its
    // name, under the import and the require conditions of its exports map.
    const script = join(app, 'check-exports.mjs');
    writeFileSync(script, `import esm, { RaftlockError } from '@raftlock/locking';
import { createRequire } from 'node:module';
const cjs = createRequire(import.meta.url)('@raftlock/locking');
const shape = (m) => ({ module: m.module, services: m.services.map((s) => s.identifier), loaders: m.loaders.map((l) => typeof l) });
console.log(JSON.stringify({ esm: shape(esm), cjs: shape(cjs.default), same: esm === cjs.default, sameError: RaftlockError === cjs.RaftlockError,
  cjsFile: createRequire(import.meta.url).resolve('@raftlock/locking'), esmFile: import.meta.resolve('@raftlock/locking') }));
`);
    const got = JSON.parse(execFileSync(process.execPath, [script], { cwd: app, encoding: 'utf8' }));
    const shape = { module: 'locking', services: ['locking-raftlock'], loaders: ['function'] };
    assert.deepEqual(got.esm, shape);
    assert.deepEqual(got.cjs, shape);
    assert.equal(got.same, true, 'import and require give the same provider module');
    assert.equal(got.sameError, true, 'and the same classes');
    assert.match(got.cjsFile, /clients\/js\/index\.js$/);
    assert.match(got.esmFile, /clients\/js\/index\.mjs$/);
    assert.deepEqual(RaftlockLockingProvider.identifier, 'locking-raftlock');
  });

  // The options of the providers entry reach the provider through its loader;
  // the framework constructs it with (cradle, the module's options,
  // declaration); its calls go to the configured node, under the configured
  // namespace.
  it('takes its options from the providers entry, through its loader', async () => {
    const logger = quietLogger();
    const options = { endpoints: [cluster.endpoints[follower]], namespace: 'shopA:', requestTimeout: 4000 };
    const loaded = await withEntry({ options }, logger);
    try {
      await assertOnTheWire(loaded.service, { node: follower, namespace: 'shopA:', key: 'sku-1' });
      assert.ok(logger.lines.includes(`info: raftlock locking provider: endpoints ${cluster.endpoints[follower]}, namespace "shopA:"`), logger.lines.join('\n'));
      assert.equal(loaded.constructions.length, 1);
      const [cradle, moduleOptions, declaration] = loaded.constructions[0].args;
      assert.ok(Array.isArray(moduleOptions.providers), 'the constructor gets the module\'s options');
      assert.equal(moduleOptions.providers[0].options, options);
      assert.equal(declaration.scope, 'internal');
      const provider = loaded.provider('locking-raftlock');
      assert.ok(provider instanceof RaftlockLockingProvider);
      assert.equal(provider.client, cradle.raftlockLockingClient, 'the client the loader made');
      assert.equal(provider.client.transport.requestTimeout, 4000);
    } finally {
      await loaded.shutdown();
    }
  });

  // The control: a provider that drops its options fails the same check
  // (its call goes to the recorder), so the check above can fail.
  it('the wire check catches a provider that drops its options', async () => {
    const loaded = await withEntry({ resolve: 'drops-options', options: { endpoints: [cluster.endpoints[follower]], namespace: 'shopA:' } });
    try {
      const seen = recorder.count;
      await assert.rejects(assertOnTheWire(loaded.service, { node: follower, namespace: 'shopA:', key: 'sku-2' }), /the recorder/);
      assert.equal(recorder.count, seen + 1);
    } finally {
      await loaded.shutdown();
    }
  });

  // A module that lists the class without its loaders (the old wrapper file)
  // still gets the entry's options: the constructor finds them in the module's.
  it('a wrapper listing only the class still gets the entry\'s options', async () => {
    const loaded = await withEntry({ resolve: 'wrapper-without-loaders', options: { endpoints: [cluster.endpoints[follower]], namespace: 'shopB:' } });
    try {
      await assertOnTheWire(loaded.service, { node: follower, namespace: 'shopB:', key: 'sku-3' });
    } finally {
      await loaded.shutdown();
    }
  });

  // The environment is the fallback for what the entry leaves out.
  it('falls back to RAFTLOCK_* for what the entry leaves out', async () => {
    const saved = process.env.RAFTLOCK_ENDPOINTS;
    process.env.RAFTLOCK_ENDPOINTS = cluster.endpoints[follower];
    try {
      const loaded = await withEntry({});
      try {
        await assertOnTheWire(loaded.service, { node: follower, namespace: 'from-env:', key: 'sku-4' });
      } finally {
        await loaded.shutdown();
      }
      const partly = await withEntry({ options: { namespace: 'shopC:' } });
      try {
        await assertOnTheWire(partly.service, { node: follower, namespace: 'shopC:', key: 'sku-5' });
      } finally {
        await partly.shutdown();
      }
    } finally {
      process.env.RAFTLOCK_ENDPOINTS = saved;
    }
  });

  // No endpoints from the options or the environment: the app does not boot,
  // and says why (never a silent localhost).
  it('refuses to boot without endpoints', async () => {
    const saved = process.env.RAFTLOCK_ENDPOINTS;
    delete process.env.RAFTLOCK_ENDPOINTS;
    try {
      await assert.rejects(withEntry({ options: { namespace: 'shopA:' } }),
        /^Error: Errors while loading module providers for module locking:\nLoaders for module Locking failed: raftlock locking provider: no endpoints: set options\.endpoints .* or RAFTLOCK_ENDPOINTS/);
      await assert.rejects(withEntry({}), /no endpoints/);
    } finally {
      process.env.RAFTLOCK_ENDPOINTS = saved;
    }
  });

  // The framework registers a provider under its identifier and looks it up
  // by its id: another id is refused at boot, with the reason.
  it('refuses to boot under an id other than its identifier', async () => {
    await assert.rejects(withEntry({ id: 'raftlock', options: { endpoints: [cluster.endpoints[follower]] } }),
      /its id must be "locking-raftlock", not "raftlock"/);
  });

  // A misspelt option is named at boot rather than ignored.
  it('refuses an unknown option at boot, naming it', async () => {
    await assert.rejects(withEntry({ options: { endpoints: [cluster.endpoints[follower]], namspace: 'x:' } }),
      /options\.namspace is not an option/);
  });

  // The shape the framework rejects (finding 2): the class as the default
  // export makes the loader fail, which is why the package exports the module.
  it('the framework refuses a class as the default export', async () => {
    await assert.rejects(withEntry({ resolve: 'class-as-default', options: { endpoints: [cluster.endpoints[follower]] } }),
      /moduleProviderServices is not iterable/);
  });
});
