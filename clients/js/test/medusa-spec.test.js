// The framework's own Locking Module spec, run against a live 3-node
// raftlock cluster with @raftlock/locking loaded the way the framework loads
// it (test/medusa/framework.js), once through a follower and once through
// the leader, with its ordering case repeated.
//
// The cases are transcribed from packages/modules/locking/integration-tests/
// __tests__/index.spec.ts of medusajs/medusa at commit
// 59e6747800133e091d20c2c167f600981abc5c0d (lines cited per case), with their
// assertions unchanged (test/medusa/expect.js gives them Jest 29's meaning).
// As in the framework's moduleIntegrationTestRunner
// (packages/medusa-test-utils/src/module-test-runner.ts, lines 168-196), the
// module is loaded anew before every case and shut down after it, so every
// case starts with a fresh provider and a fresh client.
//
// "Through a follower": the provider knows only a follower, and its fetch
// drops the Raftlock-Leader header, so every call goes to that follower,
// which forwards it. The fetch records where each call went; the suite
// checks that all of them reached the node it names.
//
// RAFTLOCK_SPEC_REPEAT (default 50) is how often the ordering case runs on
// each path.

import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { setTimeout } from 'node:timers/promises';
import { Cluster } from './cluster.js';
import { loadLockingModule } from './medusa/framework.js';
import { makeApp } from './medusa/app.js';
import { expect, jest } from './medusa/expect.js';

const REPEAT = Number(process.env.RAFTLOCK_SPEC_REPEAT ?? 50);

let cluster, app, leader;

before(async () => {
  cluster = await Cluster.start(3);
  leader = await cluster.waitLeader();
  app = makeApp();
});

after(async () => {
  await cluster?.stop();
  if (app) rmSync(app, { recursive: true, force: true });
});

/**
 * A fetch that records the host:port of every call, and with hideLeader
 * drops the Raftlock-Leader header so the client never leaves its endpoint.
 */
function recordingFetch(hideLeader) {
  const hosts = new Set();
  const f = async (url, init) => {
    hosts.add(new URL(url).host);
    const res = await fetch(url, init);
    if (!hideLeader) return res;
    const text = await res.text();
    return { ok: res.ok, status: res.status, headers: { get: (h) => (h.toLowerCase() === 'raftlock-leader' ? null : res.headers.get(h)) }, text: async () => text };
  };
  f.hosts = hosts;
  return f;
}

/**
 * Registers the spec's cases for one path. node: () => the index of the node
 * the provider talks to.
 */
function lockingSpec(path, node) {
  describe(`Locking Module spec through the ${path}`, { concurrency: 1 }, () => {
    let loaded, fetchUsed, target;
    // The proxy stands for the runner's `service` (module-test-runner.ts, lines 154-161).
    const service = new Proxy({}, { get: (_, p) => loaded.service[p].bind(loaded.service) });

    before(() => {
      target = node();
      fetchUsed = recordingFetch(path === 'follower');
    });

    beforeEach(async () => {
      loaded = await loadLockingModule({
        app,
        options: {
          database: { clientUrl: 'postgres://unused', schema: 'public' }, // as the runner passes (lines 114-125)
          providers: [{
            resolve: '@raftlock/locking',
            id: 'locking-raftlock',
            is_default: true,
            options: { endpoints: [cluster.endpoints[target]], namespace: `spec-${path}:`, fetch: fetchUsed },
          }],
        },
      });
    });

    afterEach(async () => {
      await loaded.shutdown();
    });

    after(async () => {
      assert.deepEqual([...fetchUsed.hosts], [cluster.nodes[target].addr], `every call of the ${path} suite went to node ${target}`);
      const st = await cluster.status(target);
      assert.equal(st.leaderId === cluster.nodes[target].id, path === 'leader', `node ${target} stayed the ${path}: ${JSON.stringify(st)}`);
    });

    // index.spec.ts, lines 11-145.
    describe('Locking Module Service', { concurrency: 1 }, () => {
      let stock = 5;
      function replenishStock() {
        stock = 5;
      }
      function hasStock() {
        return stock > 0;
      }
      async function reduceStock() {
        await setTimeout(10);
        stock--;
      }
      async function buy() {
        if (hasStock()) {
          await reduceStock();
          return true;
        }
        return false;
      }

      // lines 31-50
      it('should execute functions respecting the key locked', { timeout: 10000 }, async () => {
        // 10 parallel calls to buy should oversell the stock
        const prom = [];
        for (let i = 0; i < 10; i++) {
          prom.push(buy());
        }
        await Promise.all(prom);
        expect(stock).toBe(-5);

        replenishStock();

        // 10 parallel calls to buy with lock should not oversell the stock
        const promWLock = [];
        for (let i = 0; i < 10; i++) {
          promWLock.push(service.execute('item_1', buy));
        }
        await Promise.all(promWLock);

        expect(stock).toBe(0);
      });

      // lines 52-74
      it('should acquire lock and release it', { timeout: 10000 }, async () => {
        await service.acquire('key_name', {
          ownerId: 'user_id_123',
        });

        const userReleased = await service.release('key_name', {
          ownerId: 'user_id_456',
        });
        const anotherUserLock = service.acquire('key_name', {
          ownerId: 'user_id_456',
        });

        expect(userReleased).toBe(false);
        await expect(anotherUserLock).rejects.toThrowError(
          'Failed to acquire lock for key "key_name"',
        );

        const releasing = await service.release('key_name', {
          ownerId: 'user_id_123',
        });

        expect(releasing).toBe(true);
      });

      // lines 76-110
      it('should acquire lock and release it during parallel calls', { timeout: 10000 }, async () => {
        const keyToLock = 'mySpecialKey';
        const user_1 = {
          ownerId: 'user_id_456',
        };
        const user_2 = {
          ownerId: 'user_id_000',
        };

        await expect(
          service.acquire(keyToLock, user_1),
        ).resolves.toBeUndefined();

        await expect(
          service.acquire(keyToLock, user_1),
        ).resolves.toBeUndefined();

        await expect(service.acquire(keyToLock, user_2)).rejects.toThrowError(
          `Failed to acquire lock for key "${keyToLock}"`,
        );

        await expect(service.acquire(keyToLock, user_2)).rejects.toThrowError(
          `Failed to acquire lock for key "${keyToLock}"`,
        );

        await service.acquire(keyToLock, user_1);

        const releaseNotLocked = await service.release(keyToLock, {
          ownerId: 'user_id_000',
        });
        expect(releaseNotLocked).toBe(false);

        const release = await service.release(keyToLock, user_1);
        expect(release).toBe(true);
      });

      // lines 112-144
      it('should fail to acquire the same key when no owner is provided', { timeout: 10000 }, async () => {
        const keyToLock = 'mySpecialKey';

        const user_2 = {
          ownerId: 'user_id_000',
        };

        await expect(service.acquire(keyToLock)).resolves.toBeUndefined();

        await expect(service.acquire(keyToLock)).rejects.toThrow(
          `Failed to acquire lock for key "${keyToLock}"`,
        );

        await expect(service.acquire(keyToLock)).rejects.toThrow(
          `Failed to acquire lock for key "${keyToLock}"`,
        );

        await expect(service.acquire(keyToLock, user_2)).rejects.toThrow(
          `Failed to acquire lock for key "${keyToLock}"`,
        );

        await expect(service.acquire(keyToLock, user_2)).rejects.toThrow(
          `Failed to acquire lock for key "${keyToLock}"`,
        );

        const releaseNotLocked = await service.release(keyToLock, {
          ownerId: 'user_id_000',
        });
        expect(releaseNotLocked).toBe(false);

        const release = await service.release(keyToLock);
        expect(release).toBe(true);
      });
    });

    // lines 147-158
    it('should release lock in case of failure', { timeout: 10000 }, async () => {
      const fn_1 = jest.fn(async () => {
        throw new Error('Error');
      });
      const fn_2 = jest.fn(async () => {});

      await service.execute('lock_key', fn_1).catch(() => {});
      await service.execute('lock_key', fn_2).catch(() => {});

      expect(fn_1).toBeCalledTimes(1);
      expect(fn_2).toBeCalledTimes(1);
    });

    for (let i = 1; i <= REPEAT; i++) {
      it(`should release lock in case of timeout failure (${i}/${REPEAT})`, { timeout: 10000 }, () => timeoutFailureCase(service));
    }
  });
}

// lines 160-201: three executes on one key issued in this order; the first
// holds it for 1.01 s, so the second (timeout 1 s) must time out without
// running and the third (timeout 2 s) must run after the first.
async function timeoutFailureCase(service) {
  const fn_1 = jest.fn(async () => {
    await setTimeout(1010);
    return 'fn_1';
  });

  const fn_2 = jest.fn(async () => {
    return 'fn_2';
  });

  const fn_3 = jest.fn(async () => {
    return 'fn_3';
  });

  const ops = [
    service
      .execute('lock_key', fn_1, {
        timeout: 1,
      })
      .catch((e) => e),

    service
      .execute('lock_key', fn_2, {
        timeout: 1,
      })
      .catch((e) => e),

    service
      .execute('lock_key', fn_3, {
        timeout: 2,
      })
      .catch((e) => e),
  ];

  const res = await Promise.all(ops); // promiseAll of @medusajs/framework/utils: all fulfil here (each .catch returns)

  expect(res).toEqual(['fn_1', Error('Timed-out acquiring lock.'), 'fn_3']);

  expect(fn_1).toHaveBeenCalledTimes(1);
  expect(fn_2).toHaveBeenCalledTimes(0);
  expect(fn_3).toHaveBeenCalledTimes(1);
}

// The two paths run side by side (their keys are in namespaces of their own).
describe('the framework\'s locking spec', { concurrency: 2 }, () => {
  lockingSpec('follower', () => (leader + 1) % 3);
  lockingSpec('leader', () => leader);
});
