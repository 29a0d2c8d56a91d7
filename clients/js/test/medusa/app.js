// A Medusa app's directory for the tests: a package.json and
// node_modules/@raftlock/locking as `npm install /path/to/clients/js` leaves
// it (a symlink), plus any small packages of its own (fixtures).

import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** packages: { name: source of its CommonJS index.js }. */
export function makeApp(packages = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'raftlock-medusa-app-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'shop', private: true }));
  mkdirSync(join(dir, 'node_modules', '@raftlock'), { recursive: true });
  symlinkSync(pkg, join(dir, 'node_modules', '@raftlock', 'locking'), 'dir');
  for (const [name, source] of Object.entries(packages)) {
    const d = join(dir, 'node_modules', name);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'package.json'), JSON.stringify({ name, main: 'index.js' }));
    writeFileSync(join(d, 'index.js'), source);
  }
  return dir;
}
