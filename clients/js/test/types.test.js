// The declarations are hand-written: this keeps src/types.d.ts in step with
// what the package exports (every export, and every public method of the two
// classes), and both entries' declarations with their default export.
// `make js-types` compiles them with tsc.

import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as api from '../index.mjs';

const read = (f) => readFileSync(new URL(`../${f}`, import.meta.url), 'utf8');
const dts = read('src/types.d.ts');

function classBlock(name) {
  const start = dts.indexOf(`export declare class ${name} `);
  assert.ok(start >= 0, `src/types.d.ts declares class ${name}`);
  return dts.slice(start, dts.indexOf('\n}\n', start));
}

it('declares every export of the package', () => {
  for (const name of Object.keys(api)) {
    if (name === 'default') continue;
    assert.match(dts, new RegExp(`^export declare (class|const|function) ${name}\\b`, 'm'), `src/types.d.ts lacks ${name}`);
  }
  for (const entry of ['index.d.ts', 'index.d.mts']) {
    const text = read(entry);
    assert.match(text, /^export \* from '\.\/src\/types\.js';$/m, `${entry} re-exports the declarations`);
    assert.match(text, /^declare const providerModule: RaftlockProviderModule;\nexport default providerModule;$/m, `${entry} declares the default export`);
  }
  assert.deepEqual(Object.keys(api.default).sort(), ['loaders', 'module', 'services']);
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
