// raftlock for Node.js: a Connect JSON client and a locking-module provider.
export { RaftlockClient, DEFAULTS, EXECUTE_DEFAULTS } from './src/client.js';
export { RaftlockLockingProvider } from './src/provider.js';
export { currentFence, claimRow, claimRowSql, withFencedRow, FencedError, NoRowError, FENCE_HEADER } from './src/fence.js';
export { RaftlockError, LockLostError, Code, TIMED_OUT_MESSAGE, busyMessage } from './src/errors.js';
export { RaftlockLockingProvider as default } from './src/provider.js';
