// Package client is the Go SDK of raftlock: it takes, renews and releases
// locks on a raftlock cluster, finds the leader by itself, and retries
// without ever acquiring or releasing twice.
//
// # Getting started
//
// Make one Client per process with the addresses of some or all nodes,
// and share it:
//
//	c, err := client.New([]string{"10.0.0.1:7070", "10.0.0.2:7070", "10.0.0.3:7070"})
//	if err != nil { ... }
//	defer c.Close()
//
// Most code needs only Execute, which runs a function while holding a
// lock and releases it however the function ends:
//
//	err := c.Execute(ctx, []string{"stock:prod_123"}, func(ctx context.Context) error {
//		lock, _ := client.LockFromContext(ctx)
//		return inventory.Decrement(ctx, "prod_123", lock.Token()) // the resource checks the token
//	})
//
// Acquire returns a *Lock to hold across calls; Release, ReleaseAll, Get
// and List work on keys and owners directly, like a locking module's
// verbs; Status and the membership calls serve operators (and lockctl).
//
// # Locks, owners and keys
//
// A call names one or more keys and takes all of them or none. A lock has
// an owner: Acquire's default is the anonymous owner "", which is never
// re-entrant; Execute's default is an owner unique to the call. The same
// non-empty owner may acquire keys it holds again (the deadline is reset,
// the fencing token kept); re-entrance is not counted, one release frees
// the keys. A lock lives for its time to live (WithExpire, 60 s by
// default) unless refreshed; WithExpire(0) makes it live until released.
// A busy key fails a try-lock at once (ErrLockHeld); WithWait makes
// Acquire wait in a fair FIFO queue kept by the cluster, and fail with
// ErrWaitTimeout when the wait ends.
//
// # What holding a lock means
//
// No lock service can promise that a holder still holds its lock at the
// moment it writes: the holder may pause (GC, swap, a stopped VM) or be cut
// off, and the lock expire meanwhile. The client keeps a conservative
// deadline by its own monotonic clock (Lock.Deadline): the time the
// acquire or last refresh was sent, plus the time to live, minus a safety
// margin. The server counts the same time to live from a later moment
// (its grant) on a clock that never runs ahead, so until that deadline
// nobody else can hold the keys. Lock.Done closes when the deadline passes
// without a successful refresh, or when a refresh finds the lock gone; then
// the caller must stop using the resource. Execute cancels its function's
// context at that moment and returns ErrLockLost.
//
// For the time between a pause and the caller noticing, use the fencing
// token (Lock.Token): it strictly increases with each grant of a key, so a
// resource that remembers the highest token it has seen and refuses lower
// ones rejects the late write of a former holder.
//
// # Leader redirection, retries and exactly-once
//
// Any node accepts any call and forwards it to the leader; every answer
// names the leader in a response header, and the client sends its next
// calls straight there (also when the leader is not among the endpoints it
// was given). When a node does not answer, answers unavailable, or an
// attempt times out (WithAttemptTimeout), the client tries the next node
// after a backoff with jitter (WithBackoff), until the caller's context
// ends. Every mutating call carries a request id (random, from
// crypto/rand) that its retries reuse, and the cluster remembers the
// result of each id: a retry after a lost reply returns the first result
// and changes nothing. So Acquire grants at most once, and Release frees
// at most once, whatever fails in between.
//
// If the context ends while an Acquire's outcome is unknown, the client
// cleans up in the background (bounded by WithCleanupTimeout): it cancels
// the request id and, if it was granted after all, releases the grant
// under its fencing token. Close waits for these cleanups.
//
// # Errors
//
// Errors match the sentinels below with errors.Is; the server's
// *connect.Error stays reachable with errors.As. The mapping from the
// server's codes:
//
//	aborted              ErrLockHeld     `Failed to acquire lock for key "<key>"` (the exact text)
//	deadline_exceeded    ErrWaitTimeout  `Timed-out acquiring lock.` (the exact text)
//	failed_precondition  ErrNotHeld      refresh of a lock no longer held, release with a stale token
//	invalid_argument     ErrInvalidArgument
//	not_found            ErrNotFound     unknown member id
//	resource_exhausted   ErrLimit
//	unavailable          retried; ErrNoLeader when the context ends first
//	canceled             (Acquire) the server withdrew the waiter: asked again with a new id
//
// ErrLockLost and ErrReleased describe a Lock's end (Lock.Err); ErrClosed
// a closed Client.
//
// # Protocols
//
// The client speaks gRPC over HTTP/2 without TLS (h2c) by default, or the
// Connect protocol with JSON (HTTP/1.1) or binary bodies (WithProtocol).
// Its own HTTP client reuses connections; WithHTTPClient replaces it (for
// TLS, proxies or tests).
//
// client/DESIGN.md explains the design and its trade-offs.
package client
