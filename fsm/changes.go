package fsm

import (
	"fmt"
	"slices"
	"strings"
)

// Changes: every applied entry reports, in Result.Changes, what it did to
// each key, in the order it did it: holds granted, refreshed and ended,
// waiters queued and gone. Replaying the changes of every entry from an
// empty table (or from a table's List and queues at some index) rebuilds
// the holds and queues exactly; the watch stream (cluster/watchhub.go) is
// built from them. They are derived while the entry applies, so they are
// as deterministic as the table and every replica reports the same ones.

// ChangeKind is what happened to one key.
type ChangeKind uint8

// The kinds of change.
const (
	// ChangeAcquired: Owner took the key by an Acquire (Token; a re-entrant
	// acquire keeps its token and gets a new Deadline).
	ChangeAcquired ChangeKind = iota + 1
	// ChangeReleased: Owner's hold ended by a Release, ReleaseAll, an
	// upgrade to exclusive, or a grant withdrawn for a caller that went away.
	ChangeReleased
	// ChangeExpired: Owner's lease ran out.
	ChangeExpired
	// ChangeHandedOff: the waiter RequestID got the key from the queue
	// (Previous: the holder that freed it in the same entry, if any).
	ChangeHandedOff
	// ChangeWaiterJoined: the Acquire RequestID joined the key's queue
	// (Deadline: the end of its wait).
	ChangeWaiterJoined
	// ChangeWaiterLeft: the waiter RequestID left the queue without the key
	// (Reason).
	ChangeWaiterLeft
	// ChangeForceReleased: an administrator freed Owner's hold.
	ChangeForceReleased
	// ChangeRefreshed: Owner's hold got a new Deadline.
	ChangeRefreshed
)

var changeNames = [...]string{
	ChangeAcquired: "acquired", ChangeReleased: "released", ChangeExpired: "expired",
	ChangeHandedOff: "handed_off", ChangeWaiterJoined: "waiter_joined", ChangeWaiterLeft: "waiter_left",
	ChangeForceReleased: "force_released", ChangeRefreshed: "refreshed",
}

func (k ChangeKind) String() string {
	if int(k) < len(changeNames) && changeNames[k] != "" {
		return changeNames[k]
	}
	return fmt.Sprintf("change(%d)", uint8(k))
}

// LeftReason is why a waiter left a queue without the key.
type LeftReason uint8

// The reasons.
const (
	// LeftTimedOut: its wait timeout passed.
	LeftTimedOut LeftReason = iota + 1
	// LeftCancelled: it was withdrawn (CancelWait).
	LeftCancelled
	// LeftAbandoned: its caller went away (Abandon, AbandonNode).
	LeftAbandoned
)

// Change is one change of one key.
type Change struct {
	Kind ChangeKind
	Key  string
	// Owner is the holder concerned, or the waiter's owner.
	Owner string
	// Token is the hold's fencing token (0 for waiter changes).
	Token uint64
	// Mode and Limit: how the key is held (the hold's mode, which for an
	// exclusive holder's re-entrant shared acquire stays exclusive), or
	// wanted by the waiter.
	Mode  Mode
	Limit uint32
	// Permits: a semaphore hold's or waiter's permits.
	Permits uint32
	// Deadline is the hold's expiry (acquired, handed off, refreshed) or the
	// end of the wait (waiter joined), in cluster time; 0: never.
	Deadline int64
	// Expire is the hold's time to live (acquired, handed off, refreshed).
	Expire int64
	// RequestID is the Acquire's request id (acquired, handed off, waiter
	// changes).
	RequestID string
	// Reason is why a waiter left.
	Reason LeftReason
	// Previous is, for a hand-off, the holder whose hold on the key ended
	// earlier in the same entry (empty if the key was free).
	Previous string
}

// record appends a change of the entry being applied.
func (t *Table) record(c Change) {
	t.changes = append(t.changes, c)
}

// recordFree records the end of hold l, as t.ending says.
func (t *Table) recordFree(l *lock) {
	mode, limit, permits := t.holdMode(l)
	t.record(Change{Kind: t.ending, Key: l.key, Owner: l.owner, Token: l.token, Mode: mode, Limit: limit, Permits: permits})
	if t.freed == nil {
		t.freed = make(map[string]string)
	}
	t.freed[l.key] = l.owner
}

// holdMode tells how hold l holds its key.
func (t *Table) holdMode(l *lock) (Mode, uint32, uint32) {
	if t.locks[l.key] == l {
		return ModeExclusive, 0, 0
	}
	if g := t.groups[l.key]; g != nil {
		if h := g.holders[l.owner]; h != nil {
			return g.mode, g.limit, uint32(len(h.slots))
		}
	}
	return ModeExclusive, 0, 0
}

// recordWaiter records w joining or leaving each of its keys' queues.
func (t *Table) recordWaiter(kind ChangeKind, w *waiter, why LeftReason) {
	for _, k := range w.keys {
		t.record(Change{Kind: kind, Key: k, Owner: w.owner, Mode: w.mode, Limit: w.limit, Permits: w.permits,
			Deadline: w.t.deadline, RequestID: w.rid, Reason: why})
	}
}

// WaiterInfo describes a waiter in a key's queue.
type WaiterInfo struct {
	RequestID string
	Owner     string
	Mode      Mode
	Permits   uint32
	// Deadline is the end of the wait in cluster time.
	Deadline int64
}

// KeyState is a key that is held or waited for.
type KeyState struct {
	Key string
	// Held tells whether Lock describes a hold (a key with only waiters is
	// free).
	Held bool
	Lock LockInfo
	// Waiters is the key's queue, first in line first.
	Waiters []WaiterInfo
}

// StateOptions selects keys for State.
type StateOptions struct {
	// Prefix keeps keys that start with it; Key, if set, keeps only that key.
	Prefix, Key string
	// ByOwner keeps only keys Owner holds or waits for.
	ByOwner bool
	Owner   string
	// NoWaiters leaves the queues out (their lengths stay in Lock.Waiters).
	NoWaiters bool
}

// State returns the held or waited-for keys o selects, in key order: the
// starting point the changes of later entries apply to.
func (t *Table) State(o StateOptions) []KeyState {
	keep := func(k string) bool {
		if o.Key != "" {
			return k == o.Key
		}
		return strings.HasPrefix(k, o.Prefix)
	}
	seen := make(map[string]bool)
	var keys []string
	add := func(k string) {
		if keep(k) && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	switch {
	case o.Key != "":
		add(o.Key)
	case o.ByOwner:
		for l := t.owners[o.Owner]; l != nil; l = l.next {
			add(l.key)
		}
		for _, w := range t.waiters {
			if w.owner == o.Owner {
				for _, k := range w.keys {
					add(k)
				}
			}
		}
	default:
		for k := range t.locks {
			add(k)
		}
		for k := range t.groups {
			add(k)
		}
		for k := range t.queues {
			add(k)
		}
	}
	slices.Sort(keys)
	out := make([]KeyState, 0, len(keys))
	for _, k := range keys {
		ks := KeyState{Key: k}
		ks.Lock, ks.Held = t.info(k)
		q := t.queues[k]
		if !ks.Held && q == nil {
			continue
		}
		if !ks.Held {
			ks.Lock = LockInfo{Key: k, Waiters: q.Len()}
		}
		if q != nil && !o.NoWaiters {
			for e := q.Front(); e != nil; e = e.Next() {
				w := e.Value.(*waiter)
				ks.Waiters = append(ks.Waiters, WaiterInfo{RequestID: w.rid, Owner: w.owner, Mode: w.mode, Permits: w.permits, Deadline: w.t.deadline})
			}
		}
		out = append(out, ks)
	}
	return out
}
