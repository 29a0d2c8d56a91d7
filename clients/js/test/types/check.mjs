// Type-checks @raftlock/locking's declarations and the Medusa examples of the
// READMEs with tsc (Debian's node-typescript), as an ES module consumer and
// as a CommonJS consumer (module and moduleResolution node16), against the
// framework's types restated in medusa-framework/.
//
// Examples: every ```ts block preceded by a line `<!-- typecheck -->` (checked
// as both) or `<!-- typecheck: cjs -->` (checked as CommonJS only: a
// medusa-config.ts, which a Medusa project loads as CommonJS) in README.md,
// docs/medusa.md and clients/js/README.md.
//
//   node clients/js/test/types/check.mjs        (make js-types)

import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, '../..');
const repo = resolve(pkg, '../..');
const docs = ['README.md', 'docs/medusa.md', 'clients/js/README.md'];

function examples() {
  const out = [];
  for (const doc of docs) {
    const lines = readFileSync(join(repo, doc), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const m = /^<!-- typecheck(: cjs)? -->$/.exec(lines[i].trim());
      if (!m) continue;
      if (lines[i + 1]?.trim() !== '```ts') throw new Error(`${doc}:${i + 1}: a typecheck mark must stand right before a \`\`\`ts block`);
      const end = lines.indexOf('```', i + 2);
      out.push({ where: `${doc}:${i + 3}`, cjsOnly: Boolean(m[1]), code: lines.slice(i + 2, end).join('\n') });
    }
  }
  return out;
}

// Globals a Medusa project has from @types/node, which Debian's TypeScript
// does not ship: only what the examples use.
const nodeGlobals = `declare const process: { env: Record<string, string | undefined>; cwd(): string }
declare const module: { exports: unknown }
`;

const tmp = mkdtempSync(join(tmpdir(), 'raftlock-types-'));
let failed = false;
try {
  const nm = join(tmp, 'node_modules');
  mkdirSync(join(nm, '@raftlock'), { recursive: true });
  mkdirSync(join(nm, '@medusajs'), { recursive: true });
  symlinkSync(pkg, join(nm, '@raftlock', 'locking'), 'dir');
  symlinkSync(join(here, 'medusa-framework'), join(nm, '@medusajs', 'framework'), 'dir');
  const found = examples();
  if (found.length === 0) throw new Error('no examples marked <!-- typecheck --> found');
  for (const [flavour, type] of [['esm', 'module'], ['cjs', 'commonjs']]) {
    const dir = join(tmp, flavour);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${flavour}`, private: true, type }));
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        module: 'node16', moduleResolution: 'node16', target: 'es2022', lib: ['es2022', 'dom'], types: [],
        strict: true, noEmit: true, skipLibCheck: false, esModuleInterop: true, isolatedModules: true,
      },
      include: ['*.ts'],
    }));
    writeFileSync(join(dir, 'globals.d.ts'), nodeGlobals);
    copyFileSync(join(here, 'consumer.ts'), join(dir, 'consumer.ts'));
    const files = ['consumer.ts'];
    found.forEach((ex, n) => {
      if (ex.cjsOnly && flavour !== 'cjs') return;
      const name = `example-${n + 1}.ts`;
      // Each example is a module of its own.
      writeFileSync(join(dir, name), `// ${ex.where}\n${ex.code}\nexport {}\n`);
      files.push(`${name} (${ex.where})`);
    });
    try {
      execFileSync('tsc', ['-p', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      console.log(`ok ${flavour}: tsc ${execFileSync('tsc', ['--version'], { encoding: 'utf8' }).trim()} on ${files.join(', ')}`);
    } catch (e) {
      failed = true;
      console.log(`not ok ${flavour}:\n${e.stdout}${e.stderr}`);
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
