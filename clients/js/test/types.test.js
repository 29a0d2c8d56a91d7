// index.d.ts is hand-written: this keeps it in step with what index.js
// exports (every export, and every public method of the two classes).

import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as api from '../index.mjs';

const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');

function classBlock(name) {
  const start = dts.indexOf(`export declare class ${name} `);
  assert.ok(start >= 0, `index.d.ts declares class ${name}`);
  return dts.slice(start, dts.indexOf('\n}\n', start));
}

it('declares every export of index.js', () => {
  for (const name of Object.keys(api)) {
    if (name === 'default') {
      assert.match(dts, /^export default RaftlockLockingProvider;$/m);
      continue;
    }
    assert.match(dts, new RegExp(`^export declare (class|const|function) ${name}\\b`, 'm'), `index.d.ts lacks ${name}`);
  }
});

it('declares every public method of the client and the provider', () => {
  for (const cls of [api.RaftlockClient, api.RaftlockLockingProvider]) {
    const block = classBlock(cls.name);
    const methods = Object.getOwnPropertyNames(cls.prototype).filter((m) => m !== 'constructor');
    assert.ok(methods.length >= 5);
    for (const m of methods) assert.match(block, new RegExp(`^  (readonly )?${m}[(<:]`, 'm'), `${cls.name}.${m} is not declared`);
  }
  assert.match(classBlock('RaftlockLockingProvider'), /static identifier: 'locking-raftlock';/);
  assert.equal(api.RaftlockLockingProvider.identifier, 'locking-raftlock');
});
