// Fencing on the resource side: the fencing token of the execute that is
// running (currentFence), and the row pattern for SQL databases through a
// query function of any library (claimRow, withFencedRow). No
// dependencies: the caller brings the database client.
//
// The rule everywhere is "not lower": a write carrying token t applies
// only if no write with a token above t has been applied before. Equal
// tokens pass, because a re-entrant acquire (same owner, key still held)
// keeps its token: the same holder may write again.

'use strict';

const { AsyncLocalStorage } = require('node:async_hooks');

/** The HTTP header that carries a fencing token (decimal). */
const FENCE_HEADER = 'Raftlock-Fencing-Token';

const running = new AsyncLocalStorage();

/**
 * Runs fn with lease as the current fence of everything fn starts
 * (execute does this around its job).
 * @internal
 */
function runWithFence(lease, fn) {
  return running.run(lease, fn);
}

/**
 * The lease of the innermost execute whose job is running in this async
 * context: { keys, ownerId, fencingToken (bigint), locks }, or undefined
 * outside any execute. Code called from a job (a framework's locking
 * module calls the job with no arguments) reads the token here.
 */
function currentFence() {
  return running.getStore();
}

/** A write was refused: a higher fencing token has already written the row. */
class FencedError extends Error {
  constructor(message, { table, key, token, highest } = {}) {
    super(message);
    this.name = 'FencedError';
    this.code = 'fenced';
    Object.assign(this, { table, key, token, highest });
  }
}

/** The row to claim does not exist. */
class NoRowError extends Error {
  constructor(message, { table, key } = {}) {
    super(message);
    this.name = 'NoRowError';
    Object.assign(this, { table, key });
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

/** Checks and completes the options of claimRow. */
function rowOptions(o) {
  const opts = { keyColumn: 'id', tokenColumn: 'fence_token', placeholder: '$', ...o };
  for (const f of ['table', 'keyColumn', 'tokenColumn']) {
    if (typeof opts[f] !== 'string' || !IDENT.test(opts[f])) {
      throw new TypeError(`raftlock fence: ${f} ${JSON.stringify(opts[f])} is not a plain SQL identifier (letters, digits, _; schema.table allowed)`);
    }
  }
  if (opts.placeholder !== '$' && opts.placeholder !== '?') {
    throw new TypeError(`raftlock fence: placeholder ${JSON.stringify(opts.placeholder)}: want "$" ($1, $2: pg, postgres) or "?" (knex.raw, mysql, sqlite)`);
  }
  if (opts.key === undefined || opts.key === null) throw new TypeError('raftlock fence: key is required');
  opts.tokenText = tokenText(opts.token);
  return opts;
}

/** A fencing token as a decimal string (the driver casts it to BIGINT). */
function tokenText(token) {
  let t;
  try {
    t = BigInt(token);
  } catch {
    throw new TypeError(`raftlock fence: token ${String(token)} is not an integer`);
  }
  if (t <= 0n) throw new TypeError(`raftlock fence: token ${t} is missing (fencing tokens are never 0)`);
  if (t > 9223372036854775807n) throw new TypeError(`raftlock fence: token ${t} does not fit a BIGINT column`);
  return t.toString();
}

/**
 * The claim statement and its values: it moves the row's token up to
 * token if the stored one is not higher, and touches nothing otherwise.
 * With placeholder "$" (PostgreSQL):
 *
 *   UPDATE stock SET fence_token = $1 WHERE sku = $2 AND fence_token <= $1
 */
function claimRowSql(o) {
  const { table, keyColumn: k, tokenColumn: c, placeholder, key, tokenText: t } = rowOptions(o);
  if (placeholder === '$') {
    return { text: `UPDATE ${table} SET ${c} = $1 WHERE ${k} = $2 AND ${c} <= $1`, values: [t, key] };
  }
  return { text: `UPDATE ${table} SET ${c} = ? WHERE ${k} = ? AND ${c} <= ?`, values: [t, key, t] };
}

/** Rows a statement touched, from the result shapes of common libraries. */
function affected(res) {
  for (const f of ['rowCount', 'affectedRows', 'changes', 'count']) {
    if (typeof res?.[f] === 'number') return res[f];
  }
  throw new TypeError('raftlock fence: the query function must resolve to a result with rowCount (pg), affectedRows, changes or count');
}

/** The rows of a SELECT result: pg-style { rows } or a plain array. */
function rowsOf(res) {
  if (Array.isArray(res?.rows)) return res.rows;
  if (Array.isArray(res)) return res;
  throw new TypeError('raftlock fence: the query function must resolve to { rows } (pg) or an array of rows for a SELECT');
}

/**
 * Claims the row for token inside the caller's transaction: afterwards the
 * row carries token, and a concurrent claim with a higher token waits on
 * the row lock until this transaction ends. Throws FencedError when a
 * higher token has already claimed the row (nothing was changed) and
 * NoRowError when the row does not exist.
 *
 * query(text, values) runs one statement on the transaction's connection
 * and resolves to its result: pg's client.query works as it is;
 * (t, v) => trx.raw(t, v) for knex (with placeholder "?").
 *
 * Every writer of the protected data claims the row first, in the same
 * transaction as its writes; a claim outside a transaction protects
 * nothing that follows it.
 */
async function claimRow(query, o) {
  const opts = rowOptions(o);
  const { text, values } = claimRowSql(opts);
  if (affected(await query(text, values)) === 1) return;
  const p = opts.placeholder === '$' ? '$1' : '?';
  const rows = rowsOf(await query(`SELECT ${opts.tokenColumn} AS token FROM ${opts.table} WHERE ${opts.keyColumn} = ${p}`, [opts.key]));
  const where = `${opts.table} row ${JSON.stringify(String(opts.key))}`;
  if (rows.length === 0) throw new NoRowError(`raftlock fence: ${where} does not exist`, { table: opts.table, key: opts.key });
  const highest = BigInt(rows[0].token ?? rows[0][opts.tokenColumn] ?? Object.values(rows[0])[0]);
  throw new FencedError(`raftlock fence: fenced off: token ${opts.tokenText} is lower than ${highest}, which already wrote ${where}`,
    { table: opts.table, key: opts.key, token: BigInt(opts.tokenText), highest });
}

/**
 * BEGIN; claimRow; fn(query); COMMIT — or ROLLBACK when the claim or fn
 * throws (the error is rethrown). For a client whose query function runs
 * everything on one connection (a pg.Client, or a client checked out of a
 * pg.Pool); with a pool's query or an ORM use its own transaction and call
 * claimRow inside it.
 */
async function withFencedRow(query, o, fn) {
  rowOptions(o);
  await query('BEGIN', []);
  try {
    await claimRow(query, o);
    const result = await fn(query);
    await query('COMMIT', []);
    return result;
  } catch (e) {
    await query('ROLLBACK', []).catch(() => {});
    throw e;
  }
}

module.exports = { FENCE_HEADER, runWithFence, currentFence, FencedError, NoRowError, claimRowSql, claimRow, withFencedRow };
