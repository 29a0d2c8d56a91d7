// raftlock for Node.js: a Connect JSON client and a Locking Module provider.
//
// The CommonJS entry (what `require("@raftlock/locking")` and the
// framework's module loader get); index.mjs re-exports it for `import`, so
// both see the same classes. The default export is the provider module the
// framework loads: { module: "locking", services, loaders }.

'use strict';

const { RaftlockClient, DEFAULTS, EXECUTE_DEFAULTS } = require('./src/client.js');
const { RaftlockLockingProvider, raftlockClientLoader, providerModule } = require('./src/provider.js');
const { currentFence, claimRow, claimRowSql, withFencedRow, FencedError, NoRowError, FENCE_HEADER } = require('./src/fence.js');
const { RaftlockError, LockLostError, Code, TIMED_OUT_MESSAGE, busyMessage } = require('./src/errors.js');

Object.defineProperty(exports, '__esModule', { value: true });
Object.assign(exports, {
  RaftlockClient, DEFAULTS, EXECUTE_DEFAULTS,
  RaftlockLockingProvider, raftlockClientLoader,
  currentFence, claimRow, claimRowSql, withFencedRow, FencedError, NoRowError, FENCE_HEADER,
  RaftlockError, LockLostError, Code, TIMED_OUT_MESSAGE, busyMessage,
  default: providerModule,
});
