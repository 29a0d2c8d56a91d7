// raftlock for Node.js, for `import`: the CommonJS entry's exports, so a
// process that both imports and requires the package has one copy of it.

import cjs from './index.js';

export const {
  RaftlockClient, DEFAULTS, EXECUTE_DEFAULTS,
  RaftlockLockingProvider, raftlockClientLoader,
  currentFence, claimRow, claimRowSql, withFencedRow, FencedError, NoRowError, FENCE_HEADER,
  RaftlockError, LockLostError, Code, TIMED_OUT_MESSAGE, busyMessage,
} = cjs;
export default cjs.default;
