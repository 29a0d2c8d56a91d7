// TLS for the client: the tls option read into node:tls connect options
// (the CA that signed the nodes' certificates, maybe a client certificate),
// which the transport's HTTP/1.1 connections (http1.js) use.

'use strict';

const { readFileSync } = require('node:fs');

/**
 * Reads the tls option: PEM contents (ca, cert, key) or file paths (caFile,
 * certFile, keyFile). Returns options for tls.connect (http1.js; an
 * https.Agent takes them too).
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
  const agent = { minVersion: 'TLSv1.2', ca: o.ca };
  if (o.cert !== undefined) Object.assign(agent, { cert: o.cert, key: o.key });
  if (t.servername !== undefined) agent.servername = t.servername;
  return agent;
}

module.exports = { tlsAgentOptions };
