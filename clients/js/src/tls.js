// TLS for the client: a fetch-shaped function over node:https with an
// Agent that trusts the cluster's CA and may present a client certificate.
//
// Node.js 20's global fetch (undici) takes no CA per call, and undici's
// Agent is not importable from Node.js itself without installing the
// undici package; node:https is, so TLS goes through it. The transport
// needs only a small part of fetch: POST with headers, body and an
// AbortSignal, and an answer with ok, status, headers.get and text().

'use strict';

const { Agent, request } = require('node:https');
const { readFileSync } = require('node:fs');

/**
 * Reads the tls option: PEM contents (ca, cert, key) or file paths (caFile,
 * certFile, keyFile). Returns the options for an https.Agent.
 *
 * @param {import('../index.js').TLSOptions} t
 */
function tlsAgentOptions(t) {
  if (t === null || typeof t !== 'object') throw new TypeError('raftlock: tls must be an object');
  const known = new Set(['ca', 'cert', 'key', 'caFile', 'certFile', 'keyFile', 'servername']);
  for (const k of Object.keys(t)) {
    if (!known.has(k)) throw new TypeError(`raftlock: tls.${k} is not an option (ca, cert, key, caFile, certFile, keyFile, servername)`);
  }
  const pick = (inline, file) => {
    if (t[inline] !== undefined && t[file] !== undefined) throw new TypeError(`raftlock: give tls.${inline} or tls.${file}, not both`);
    if (t[file] !== undefined) {
      try {
        return readFileSync(t[file]);
      } catch (e) {
        throw new TypeError(`raftlock: tls.${file}: ${e.message}`, { cause: e });
      }
    }
    return t[inline];
  };
  const o = { ca: pick('ca', 'caFile'), cert: pick('cert', 'certFile'), key: pick('key', 'keyFile') };
  if (o.ca === undefined) throw new TypeError('raftlock: tls needs the CA that signed the nodes\' certificates (tls.ca or tls.caFile)');
  if ((o.cert === undefined) !== (o.key === undefined)) throw new TypeError('raftlock: tls.cert and tls.key go together');
  const agent = { keepAlive: true, minVersion: 'TLSv1.2', ca: o.ca };
  if (o.cert !== undefined) Object.assign(agent, { cert: o.cert, key: o.key });
  if (t.servername !== undefined) agent.servername = t.servername;
  return agent;
}

/**
 * Returns a fetch-shaped function that sends every request through one
 * keep-alive https.Agent built from agentOptions. Errors look like fetch's:
 * a TypeError whose cause is the socket or TLS error (its code, e.g.
 * ECONNREFUSED or UNABLE_TO_VERIFY_LEAF_SIGNATURE), or the signal's reason
 * when the signal aborts.
 */
function httpsFetch(agentOptions) {
  const agent = new Agent(agentOptions);
  const f = (url, init = {}) => new Promise((resolve, reject) => {
    const signal = init.signal;
    if (signal?.aborted) return reject(signal.reason);
    const body = init.body ?? '';
    const headers = { ...init.headers, 'content-length': Buffer.byteLength(body) };
    let settled = false;
    const done = (fn, v) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn(v);
    };
    const req = request(url, { method: init.method ?? 'GET', headers, agent }, (res) => {
      const chunks = [];
      res.setEncoding('utf8');
      res.on('data', (c) => chunks.push(c));
      res.on('error', (e) => done(reject, new TypeError('response failed', { cause: e })));
      res.on('aborted', () => done(reject, new TypeError('response aborted', { cause: new Error('connection closed') })));
      res.on('end', () => {
        const text = chunks.join('');
        done(resolve, {
          ok: res.statusCode >= 200 && res.statusCode < 300,
          status: res.statusCode,
          headers: { get: (name) => headerValue(res.headers[String(name).toLowerCase()]) },
          text: async () => text,
          json: async () => JSON.parse(text),
        });
      });
    });
    const onAbort = () => {
      req.destroy();
      done(reject, signal.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (e) => done(reject, new TypeError('request failed', { cause: e })));
    req.end(body);
  });
  f.close = () => agent.destroy();
  return f;
}

function headerValue(v) {
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(', ') : String(v);
}

module.exports = { tlsAgentOptions, httpsFetch };
