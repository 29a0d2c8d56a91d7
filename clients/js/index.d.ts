// Types of @raftlock/locking for `require` (see src/types.d.ts); the default export is the
// provider module the framework loads.
export * from './src/types.js';
import type { RaftlockProviderModule } from './src/types.js';
declare const providerModule: RaftlockProviderModule;
export default providerModule;
