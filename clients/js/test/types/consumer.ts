// What a Medusa project's TypeScript sees of @raftlock/locking, checked by
// tsc as an ES module and as a CommonJS module (check.mjs). The framework's
// types come from the fixture in medusa-framework/ (restated, with sources).

import raftlock, { LockLostError, RaftlockClient, RaftlockLockingProvider, type Lease, type RaftlockProviderOptions,
  FENCE_HEADER, FencedError, NoRowError, claimRow, claimRowSql, currentFence, withFencedRow, type FenceRowOptions, type QueryFunction } from "@raftlock/locking"
import type { ILockingModule, ILockingProvider, MedusaContainer, ModuleProviderExports, ModuleProviderLoaderFunction } from "@medusajs/framework/types"
import { Modules } from "@medusajs/framework/utils"

// The default export is what ModuleProvider(Modules.LOCKING, ...) returns.
export const asModule: ModuleProviderExports = raftlock
export const moduleName: typeof Modules.LOCKING = raftlock.module
export const loader: ModuleProviderLoaderFunction = raftlock.loaders[0]

// The provider is an ILockingProvider.
const options: RaftlockProviderOptions = { endpoints: ["10.0.0.1:7070", "10.0.0.2:7070"], namespace: "shop:", requestTimeout: 5000 }
export const provider: ILockingProvider = new RaftlockLockingProvider(options)
export const identifier: "locking-raftlock" = RaftlockLockingProvider.identifier
// @ts-expect-error a misspelt option is an error, not ignored
new RaftlockLockingProvider({ endpoints: ["10.0.0.1:7070"], namspace: "shop:" })

// Through the module, as code resolves it from the container.
declare const container: MedusaContainer
const locking: ILockingModule = container.resolve(Modules.LOCKING)
export const token: Promise<bigint | undefined> = locking.execute("prod_123", async (signal?: AbortSignal, lease?: Lease) => {
  signal?.throwIfAborted()
  return lease?.fencingToken
}, { timeout: 5 })
// @ts-expect-error a job with required (signal, lease) is not a job of ILockingModule.execute
locking.execute("prod_123", async (signal: AbortSignal, lease: Lease) => lease.fencingToken)

// The provider called directly gives the job its signal and lease as required parameters.
export const direct: Promise<string> = new RaftlockLockingProvider(options)
  .execute(["a", "b"], async (signal, lease) => `${signal.aborted} ${lease.fencingToken}`, { timeout: 2, expire: 30 })

// Errors and the client.
const lost = new LockLostError("Lost the lock on key \"a\"")
export const kind: "conflict" = lost.type
export const client = new RaftlockClient({ endpoints: "10.0.0.1:7070", ordered: true })

// Fencing: checkFence, currentFence() inside a job that takes no arguments, the row pattern.
export const fresh: Promise<boolean> = client.checkFence("prod_123", 7n).then((r) => r.current && r.lock?.fencingToken === 7n)
export const header: string = FENCE_HEADER
declare const query: QueryFunction
const row: FenceRowOptions = { table: "stock", keyColumn: "sku", key: "prod_123", token: 7n }
export const claim: { text: string; values: unknown[] } = claimRowSql({ ...row, placeholder: "?" })
export const sold: Promise<number | undefined> = locking.execute("prod_123", async () => {
  const fence: Lease | undefined = currentFence()
  if (!fence) return undefined
  await claimRow(query, { ...row, token: fence.fencingToken })
  return withFencedRow(query, row, async (q) => (await q("UPDATE stock SET qty = qty - 1 WHERE sku = $1", ["prod_123"])).rowCount as number)
})
export function refused(e: unknown): bigint | undefined {
  if (e instanceof FencedError) return e.code === "fenced" ? e.highest : undefined
  if (e instanceof NoRowError) return undefined
  throw e
}
// @ts-expect-error placeholder is "$" or "?"
claimRowSql({ ...row, placeholder: ":" })
// A watch: updates narrow on type; indexes and tokens are bigints.
export async function hottest(signal: AbortSignal): Promise<bigint> {
  let last = 0n
  for await (const u of client.watch("stock:", { signal, fromIndex: 0n, excludeWaiters: false })) {
    if (u.type === "snapshot" && u.resync) last = u.index
    if (u.type === "events") for (const e of u.events) last = e.fencingToken > last ? e.fencingToken : last
  }
  return last
}
// @ts-expect-error an event kind is one of the documented names
export const badKind: import("../../index.js").WatchEventKind = "granted"


// Modes: the client and the provider take mode, permits and limit; locks report them.
export const shared: Promise<string> = client.acquire("report", { ownerId: "r1", mode: "shared" }).then((r) => r.locks[0].mode)
export const slots: Promise<number[]> = client.acquire("supplier", { ownerId: "i1", mode: "semaphore", limit: 4, permits: 2 }).then((r) => r.locks[0].slots)
export const holders: Promise<string[]> = client.getLock("report").then((l) => (l?.holders ?? []).map((h) => h.ownerId))
export const readers: Promise<number> = new RaftlockLockingProvider(options).execute("report", async () => 1, { mode: "shared", timeout: 5 })
// @ts-expect-error a mode is one of "exclusive", "shared", "semaphore"
client.acquire("report", { ownerId: "r1", mode: "read" })
