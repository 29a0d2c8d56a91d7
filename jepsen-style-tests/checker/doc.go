// Package checker owns the invariants of DESIGN.md section 8 as functions
// over recorded histories: each takes operations and/or node journals (from
// package history) and returns a Result saying whether the invariant held and,
// if not, what broke it. The functions are pure apart from Linearizable
// writing porcupine's HTML visualisation when it finds a violation; none of
// them needs a running cluster.
//
// The checkers and what each one proves:
//
//   - WellFormed: the recorder kept the Op contract (a broken history makes
//     the other results meaningless).
//   - Linearizable: per key, the acquires, releases, refreshes and reads fit
//     one sequential lock in real-time order, with lease expiry allowed only
//     where the lease can have ended (porcupine).
//   - MutualExclusion: no two owners' conservatively believed holding
//     intervals of a key overlap.
//   - Fencing: tokens strictly increase in grant order, later acquires get
//     higher tokens, and the fenced resource never accepted a stale write.
//   - Durable: every acknowledged acquire, release and refresh is in every
//     node's journal with the result the client saw.
//   - Converged: all journals agree on every index they share.
//   - Recovery: after the final heal, a leader and every key came back in
//     time (measured by the runner).
//
// README-checkers.md next to this package states the assumptions behind each.
package checker
