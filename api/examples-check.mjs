// Runs every example of api/README.md against a live node and checks its
// output. api/examples.sh starts the node and calls this; run by hand:
//
//   node api/examples-check.mjs --addr 127.0.0.1:PORT [--print] [README]
//
// An example is a fenced block whose info string is "sh example"; the
// fenced block right after it, with the info string "<lang> output", is
// what it must print (stdout, then stderr). Examples run in README order
// against one fresh single-node cluster whose node id is n1, each with
// bash in a scratch directory; "127.0.0.1:7070" is replaced by --addr.
//
// Outputs are compared piece by piece: JSON values structurally, other
// lines exactly (trailing white space and CR ignored). Values that differ
// from run to run are checked by form instead of value:
//   - fencingToken / fencingTokens: decimal strings. Each value written in
//     the README stands for one real token: equal README values must be
//     equal tokens, and their order must be the same (tokens only grow).
//     A bound README token in a later command is replaced by the real one.
//   - term, commitIndex, appliedIndex: any decimal string.
//   - clusterId: 16 hex digits (derived from the node's address, whose
//     port differs from run to run).
//   - expiresIn: a duration above 0 and not above the README's value
//     rounded up to a whole second.
//   - requestId "srv-...": the server's own: "srv-" and hex digits.
// Strings compare with no-break spaces read as spaces (protobuf's error
// texts carry one at random per build).
// With --print it prints what each example printed instead of checking.
//
// It also fails if a method declared in api/raftlock/v1/*.proto has no
// curl example (the README documents every method of the API).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const addr = flag('--addr');
const print = args.includes('--print');
const readme = args.filter((a) => a !== '--print')[0] ?? join(dirname(fileURLToPath(import.meta.url)), 'README.md');
if (!addr) {
  console.error('usage: node api/examples-check.mjs --addr host:port [--print] [README]');
  process.exit(2);
}

/** The examples of a markdown file: [{line, cmd, lang, expected}]. */
export function extract(markdown) {
  const lines = markdown.split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(`{3,})(.*)$/.exec(lines[i]);
    if (!m) continue;
    const start = i;
    const body = [];
    for (i++; i < lines.length && lines[i] !== m[1]; i++) body.push(lines[i]);
    blocks.push({ line: start + 1, info: m[2].trim().split(/\s+/), body: body.join('\n'), end: i });
  }
  const examples = [];
  for (let b = 0; b < blocks.length; b++) {
    const blk = blocks[b];
    if (blk.info[0] !== 'sh' || blk.info[1] !== 'example') {
      if (blk.info[1] === 'output') throw new Error(`line ${blk.line}: an output block must follow a "sh example" block`);
      continue;
    }
    const next = blocks[b + 1];
    const gap = next ? lines.slice(blk.end + 1, next.line - 1).join('').trim() : 'x';
    if (!next || next.info[1] !== 'output' || gap !== '') {
      throw new Error(`line ${blk.line}: a "sh example" block must be followed at once by a "<lang> output" block`);
    }
    examples.push({ line: blk.line, cmd: blk.body, expected: next.body });
    b++;
  }
  return examples;
}

/** Splits output into JSON values and other lines. */
export function segments(text) {
  const out = [];
  let i = 0;
  const s = text.replace(/\r/g, '');
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i])) i++;
    if (i >= s.length) break;
    if (s[i] === '{' || s[i] === '[') {
      const end = jsonEnd(s, i);
      if (end > 0) {
        try {
          out.push({ json: JSON.parse(s.slice(i, end)) });
          i = end;
          continue;
        } catch {
          // not JSON after all: a text line
        }
      }
    }
    let nl = s.indexOf('\n', i);
    if (nl < 0) nl = s.length;
    out.push({ text: s.slice(i, nl).trimEnd() });
    i = nl + 1;
  }
  return out;
}

function jsonEnd(s, i) {
  let depth = 0;
  let inStr = false;
  for (let j = i; j < s.length; j++) {
    const c = s[j];
    if (inStr) {
      if (c === '\\') j++;
      else if (c === '"') inStr = false;
    } else if (c === '"') inStr = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return j + 1;
    }
  }
  return -1;
}

const decimal = /^\d+$/;
const durationSeconds = (d) => (typeof d === 'string' && /^\d+(\.\d+)?s$/.test(d) ? Number(d.slice(0, -1)) : NaN);

/** Token bindings: README token -> real token. */
export class Tokens {
  constructor() { this.map = new Map(); }

  bind(want, got, where) {
    if (!decimal.test(got)) return `${where}: ${JSON.stringify(got)} is not a decimal token`;
    const known = this.map.get(want);
    if (known !== undefined) return known === got ? null : `${where}: README token ${want} was ${known} before, now ${got}`;
    for (const [w, g] of this.map) {
      const wo = Math.sign(Number(BigInt(want) - BigInt(w)));
      const go = Math.sign(Number(BigInt(got) - BigInt(g)));
      if (wo !== go) return `${where}: README tokens ${w} -> ${want} but real tokens ${g} -> ${got} (order or equality differs)`;
    }
    this.map.set(want, got);
    return null;
  }

  /** Replaces bound README tokens in a command's "fencingToken":"N". */
  substitute(cmd) {
    return cmd.replace(/("fencingToken"\s*:\s*")(\d+)(")/g, (all, a, n, b) => (this.map.has(n) ? a + this.map.get(n) + b : all));
  }
}

/** Compares one JSON value; returns a list of differences. */
export function compare(want, got, tokens, path = '$') {
  const diffs = [];
  const key = path.split('.').pop().replace(/\[\d+\]$/, '');
  if (key === 'fencingToken' || key === 'fencingTokens') {
    if (Array.isArray(want)) {
      if (!Array.isArray(got) || got.length !== want.length) return [`${path}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`];
      want.forEach((w, i) => { const e = tokens.bind(w, got[i], `${path}[${i}]`); if (e) diffs.push(e); });
      return diffs;
    }
    const e = tokens.bind(want, got, path);
    return e ? [e] : [];
  }
  if (key === 'term' || key === 'commitIndex' || key === 'appliedIndex') {
    return typeof got === 'string' && decimal.test(got) ? [] : [`${path}: ${JSON.stringify(got)} is not a decimal string`];
  }
  if (key === 'clusterId') {
    return typeof got === 'string' && /^[0-9a-f]{16}$/.test(got) ? [] : [`${path}: ${JSON.stringify(got)} is not a cluster id`];
  }
  if (key === 'expiresIn') {
    const g = durationSeconds(got);
    const limit = Math.ceil(durationSeconds(want));
    return g > 0 && g <= limit ? [] : [`${path}: ${JSON.stringify(got)} is not a duration in (0s, ${limit}s]`];
  }
  if (key === 'requestId' && typeof want === 'string' && want.startsWith('srv-')) {
    return typeof got === 'string' && /^srv-[0-9a-f]+$/.test(got) ? [] : [`${path}: ${JSON.stringify(got)} is not a server request id`];
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) return [`${path}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`];
    want.forEach((w, i) => diffs.push(...compare(w, got[i], tokens, `${path}[${i}]`)));
    return diffs;
  }
  if (want && typeof want === 'object') {
    if (!got || typeof got !== 'object' || Array.isArray(got)) return [`${path}: want an object, got ${JSON.stringify(got)}`];
    for (const k of new Set([...Object.keys(want), ...Object.keys(got)])) {
      if (!(k in want)) diffs.push(`${path}.${k}: not in the README, got ${JSON.stringify(got[k])}`);
      else if (!(k in got)) diffs.push(`${path}.${k}: missing, want ${JSON.stringify(want[k])}`);
      else diffs.push(...compare(want[k], got[k], tokens, `${path}.${k}`));
    }
    return diffs;
  }
  // Go's protobuf puts a no-break space instead of a space into some error
  // texts, at random per build (so that nobody matches them exactly).
  const plain = (v) => (typeof v === 'string' ? v.replaceAll('\u00a0', ' ') : v);
  return plain(want) === plain(got) ? [] : [`${path}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`];
}

function check(expected, actual, tokens) {
  const want = segments(expected);
  const got = segments(actual);
  const diffs = [];
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    const w = want[i];
    const g = got[i];
    if (!w) { diffs.push(`unexpected output: ${JSON.stringify(g.json ?? g.text)}`); continue; }
    if (!g) { diffs.push(`missing output: ${JSON.stringify(w.json ?? w.text)}`); continue; }
    if ('json' in w && 'json' in g) diffs.push(...compare(w.json, g.json, tokens));
    else if ('text' in w && 'text' in g) { if (w.text !== g.text) diffs.push(`want line ${JSON.stringify(w.text)}, got ${JSON.stringify(g.text)}`); }
    else diffs.push(`want ${JSON.stringify(w.json ?? w.text)}, got ${JSON.stringify(g.json ?? g.text)}`);
  }
  return diffs;
}

/** "raftlock.v1.LockService/Acquire" for every rpc of the .proto files. */
function protoMethods(protoDir) {
  const methods = [];
  for (const f of readdirSync(protoDir).filter((n) => n.endsWith('.proto')).sort()) {
    const text = readFileSync(join(protoDir, f), 'utf8');
    const pkg = /^package\s+([\w.]+);/m.exec(text)[1];
    for (const svc of text.matchAll(/^service\s+(\w+)\s*\{([\s\S]*?)^\}/gm)) {
      for (const rpc of svc[2].matchAll(/^\s*rpc\s+(\w+)\s*\(/gm)) methods.push(`${pkg}.${svc[1]}/${rpc[1]}`);
    }
  }
  return methods;
}

const examples = extract(readFileSync(readme, 'utf8'));
const curled = examples.map((e) => e.cmd).join('\n');
const undocumented = protoMethods(join(dirname(fileURLToPath(import.meta.url)), 'raftlock/v1'))
  .filter((m) => !curled.includes(`/${m}`));
const tokens = new Tokens();
const dir = mkdtempSync(join(tmpdir(), 'raftlock-examples-'));
const env = { ...process.env, PATH: `${process.env.PATH}:/usr/local/go/bin` };
let failed = 0;
try {
  for (const ex of examples) {
    const cmd = tokens.substitute(ex.cmd).replaceAll('127.0.0.1:7070', addr);
    const r = spawnSync('bash', ['-c', cmd], { cwd: dir, env, encoding: 'utf8', timeout: 60000 });
    const actual = (r.stdout ?? '') + (r.stderr ?? '');
    const first = ex.cmd.split('\n').find((l) => !l.startsWith('#')) ?? '';
    if (print) {
      console.log(`--- ${resolve(readme)}:${ex.line}\n${actual.replaceAll(addr, '127.0.0.1:7070')}`);
      continue;
    }
    const diffs = r.error ? [`could not run: ${r.error.message}`] : check(ex.expected.replaceAll('127.0.0.1:7070', addr), actual, tokens);
    if (diffs.length === 0) {
      console.log(`ok   ${ex.line}: ${first.slice(0, 100)}`);
    } else {
      failed++;
      console.log(`FAIL ${ex.line}: ${first}\n  ${diffs.join('\n  ')}\n  --- command\n${cmd}\n  --- output (exit ${r.status})\n${actual}`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (!print) {
  console.log(`${examples.length - failed} of ${examples.length} examples of ${readme} passed`);
  if (undocumented.length > 0) console.log(`FAIL methods without an example: ${undocumented.join(', ')}`);
  if (failed > 0 || examples.length === 0 || undocumented.length > 0) process.exit(1);
}
