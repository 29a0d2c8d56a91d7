// A fetch-shaped function over node:https for the test harness: Node.js
// 20's global fetch takes no CA per call, so the harness's own calls to a
// TLS cluster (with the client certificate) go through an https.Agent.

import { Agent, request } from 'node:https';

/**
 * Returns a fetch-shaped function that sends every request through one
 * keep-alive https.Agent built from agentOptions. Errors look like fetch's:
 * a TypeError whose cause is the socket or TLS error (its code, e.g.
 * ECONNREFUSED or UNABLE_TO_VERIFY_LEAF_SIGNATURE), or the signal's reason
 * when the signal aborts.
 */
export function httpsFetch(agentOptions) {
  const agent = new Agent({ keepAlive: true, ...agentOptions });
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

