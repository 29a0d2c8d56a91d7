// Starts a PostgreSQL server of its own for a test: initdb on a temporary
// directory, a free port on 127.0.0.1, as the postgres user when run as
// root (initdb refuses root). Throws (the test fails, never skips) when
// the server cannot start. Debian's layout: /usr/lib/postgresql/*/bin, or
// $PG_BINDIR.

import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgConnection } from './pgwire.js';

function binDir() {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin and PG_BINDIR is unset (make fence-pg installs Debian\'s postgresql)');
  return join(root, versions[0], 'bin');
}

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

export async function startPostgres() {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'raftlock-js-pg-'));
  const as = {};
  if (process.getuid() === 0) {
    as.uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    as.gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, as.uid, as.gid);
  }
  const data = join(dir, 'data');
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync'], { ...as, stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await freePort();
  const log = join(dir, 'postgres.log');
  const fd = openSync(log, 'a');
  const proc = spawn(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir], { ...as, stdio: ['ignore', fd, fd] });
  let exited = false;
  proc.on('exit', () => { exited = true; });
  const stop = async () => {
    if (!exited) {
      proc.kill('SIGINT');
      await new Promise((r) => (exited ? r() : proc.on('exit', r)));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60000;
  for (;;) {
    try {
      const c = await PgConnection.open({ port });
      c.close();
      break;
    } catch (e) {
      if (exited || Date.now() > deadline) {
        const tail = readFileSync(log, 'utf8').split('\n').slice(-20).join('\n');
        await stop();
        throw new Error(`postgres did not start (${e.message}):\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 50)); // polling with a deadline
    }
  }
  return { port, connect: () => PgConnection.open({ port }), stop };
}
