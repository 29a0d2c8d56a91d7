// Package fence lets a resource refuse writes from a lock holder that is no
// longer the holder, by the fencing tokens raftlock hands out.
//
// # Why a lock is not enough
//
// A lock holder can pause (a GC pause, a stopped VM, a slow network) past
// its lease. The cluster then gives the key to someone else, and when the
// first holder wakes up it still believes it holds the lock and writes.
// No client-side check closes this window: the pause can come right after
// the check. Only the resource can refuse the late write, and it can,
// because every grant of a key carries a fencing token that is higher
// than every earlier grant's. A resource that remembers the highest token
// that wrote it and refuses lower ones never accepts a stale holder.
//
// # The rule: not lower
//
// A write with token t is accepted if no write with a token above t was
// accepted before. Equal tokens pass: a re-entrant acquire (same owner,
// key still held) keeps its token, so the same holder may write many
// times. Token 0 is refused (raftlock never issues it; a 0 means the
// token was not passed along).
//
// # Three ways to check
//
//   - Guard: in memory, for a resource inside one process (a file, a
//     device, an in-process cache), or behind an HTTP or Connect API with
//     Middleware and fenceconnect.NewInterceptor, which read the token
//     from the Raftlock-Fencing-Token header.
//   - Rows: in the database, for data in SQL: the row keeps the highest
//     token that wrote it, and a transaction claims the row before it
//     writes. This is the one to use when the protected data is in a
//     database: the check and the write commit together.
//   - CheckFence (client.Client.CheckFence, in the client package): ask
//     the cluster whether a token is still current. It costs one
//     leader-verified read and only proves the token was current during
//     the call; use it where the resource cannot keep a token, or as a
//     last look before something irreversible.
//
// # In code
//
// Inside client.Execute, pass the lock's token to the resource:
//
//	rows, _ := fence.NewRows(fence.RowsConfig{Table: "stock", KeyColumn: "sku"})
//	err := cl.Execute(ctx, []string{"sku-1"}, func(ctx context.Context) error {
//		l, _ := client.LockFromContext(ctx)
//		return rows.Update(ctx, db, "sku-1", l.Token(), func(tx *sql.Tx) error {
//			_, err := tx.ExecContext(ctx, "UPDATE stock SET qty = qty - 1 WHERE sku = $1", "sku-1")
//			return err
//		})
//	})
//	if errors.Is(err, fence.ErrFenced) {
//		// A newer holder has written: this one lost the lock; never retry with its token.
//	}
//
// The examples of this package run each way (go test -run Example
// ./fence/...), and fence/pgtest shows the row pattern stopping a paused
// worker from overselling on a real PostgreSQL. docs/fencing.md has the
// whole story.
//
// The package imports nothing but the standard library (and nothing of
// the raftlock server or client): tokens are plain uint64 values, however
// the caller got them.
package fence
