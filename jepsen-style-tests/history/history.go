package history

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Errors of decoding and validating recorded data.
var (
	// ErrBadLine: a line of an operations file or a journal is not valid JSON
	// for its type (and, for a journal, not a recoverable torn line).
	ErrBadLine = errors.New("line is not a valid record")
	// ErrInvalidOp: an operation breaks a rule of the Op contract.
	ErrInvalidOp = errors.New("invalid operation")
	// ErrTrailingData: a line holds more than one JSON value.
	ErrTrailingData = errors.New("trailing data after the record")
)

// Kind is the kind of client operation.
type Kind string

// The kinds of operation the workload performs.
const (
	// KindAcquire: Acquire of one key with a fresh owner and request id.
	KindAcquire Kind = "acquire"
	// KindRelease: Release of one key; Token != 0 means a token release.
	KindRelease Kind = "release"
	// KindRefresh: Refresh of one held key.
	KindRefresh Kind = "refresh"
	// KindRead: a linearizable GetLock.
	KindRead Kind = "read"
	// KindWrite: a write to the fenced resource (not a lock service call).
	KindWrite Kind = "write"
)

// Outcome is what the client learned about an operation.
type Outcome string

// The outcomes.
const (
	// OutcomeOK: the call succeeded (a write: the resource accepted it).
	OutcomeOK Outcome = "ok"
	// OutcomeFail: the call definitely did not take effect (a write: the
	// resource rejected it).
	OutcomeFail Outcome = "fail"
	// OutcomeUnknown: the client gave up without learning the outcome.
	OutcomeUnknown Outcome = "unknown"
)

// Infinity is the Return time used for an operation whose effect may have
// happened at any time after its invocation (unknown or resolved outcomes).
const Infinity int64 = math.MaxInt64

// Op is one client operation of the history.
type Op struct {
	ID     int    `json:"id"`
	Client int    `json:"client"` // one client process/goroutine; clients do one op at a time
	Kind   Kind   `json:"kind"`
	Key    string `json:"key"`
	// Owner is unique per acquire attempt in the workload (no re-entrancy).
	Owner     string  `json:"owner,omitempty"`
	RequestID string  `json:"request_id,omitempty"`
	Node      string  `json:"node,omitempty"` // endpoint the client used first
	Invoke    int64   `json:"invoke"`         // ns since the run started, one monotonic clock for all
	Return    int64   `json:"return"`         // ns; for unknown outcomes: when the client gave up
	Outcome   Outcome `json:"outcome"`
	// Expire is, for acquire/refresh, the TTL asked (0 = never expires; a
	// refresh with 0 keeps the lock's TTL).
	Expire time.Duration `json:"expire,omitempty"`
	// Token is, for an ok acquire, the granted (highest) token; for
	// release and write, the token used; for read, the token seen.
	Token     uint64 `json:"token,omitempty"`
	Held      bool   `json:"held,omitempty"`       // read ok: the key was held
	ReadOwner string `json:"read_owner,omitempty"` // read ok: the holder seen
	Released  bool   `json:"released,omitempty"`   // release ok: server said released
	// Deadline is, for an ok acquire/refresh, the client's conservative
	// deadline (ns since start): it stops using the lock at this time unless
	// a refresh returned ok before. 0: no deadline (the lock never expires).
	Deadline int64 `json:"deadline,omitempty"`
	// Resolved marks an unknown outcome later resolved from the server's
	// request-id outcome table: Outcome then says what it was, and Return
	// stays "unknown time" (treat as +inf).
	Resolved bool   `json:"resolved,omitempty"`
	Error    string `json:"error,omitempty"`
	// Mode is, for the ops of a shared or semaphore hold (acquire,
	// refresh, write, release), "shared", "exclusive" (the writer of a
	// read-write key) or "semaphore"; empty on plain exclusive keys, whose
	// checks are the original ones. Limit is a semaphore's limit; Slots are
	// the slots an ok semaphore acquire got (and a write used).
	Mode  string   `json:"mode,omitempty"`
	Limit int      `json:"limit,omitempty"`
	Slots []uint32 `json:"slots,omitempty"`
}

// The modes an Op may name (Op.Mode).
const (
	ModeShared    = "shared"
	ModeExclusive = "exclusive"
	ModeSemaphore = "semaphore"
)

// EffectiveReturn is the latest time the operation can have taken effect:
// Return for a definite outcome, Infinity for an unknown or resolved one.
func (o *Op) EffectiveReturn() int64 {
	if o.Outcome == OutcomeUnknown || o.Resolved {
		return Infinity
	}
	return o.Return
}

// Acknowledged reports whether the operation is known to have succeeded,
// either because the client saw it or because it was resolved later.
func (o *Op) Acknowledged() bool { return o.Outcome == OutcomeOK }

// SeenOK reports whether the client itself saw the success (not a later
// resolution): only then did it act on the result.
func (o *Op) SeenOK() bool { return o.Outcome == OutcomeOK && !o.Resolved }

// Validate checks the operation against the Op contract.
func (o *Op) Validate() error {
	switch o.Kind {
	case KindAcquire, KindRelease, KindRefresh, KindRead, KindWrite:
	default:
		return fmt.Errorf("%w: op %d: unknown kind %q", ErrInvalidOp, o.ID, o.Kind)
	}
	switch o.Outcome {
	case OutcomeOK, OutcomeFail, OutcomeUnknown:
	default:
		return fmt.Errorf("%w: op %d: unknown outcome %q", ErrInvalidOp, o.ID, o.Outcome)
	}
	if o.Key == "" {
		return fmt.Errorf("%w: op %d: empty key", ErrInvalidOp, o.ID)
	}
	if o.Return < o.Invoke {
		return fmt.Errorf("%w: op %d: returns at %d before its invocation at %d", ErrInvalidOp, o.ID, o.Return, o.Invoke)
	}
	if o.Resolved && o.Outcome == OutcomeUnknown {
		return fmt.Errorf("%w: op %d: resolved but its outcome is still unknown", ErrInvalidOp, o.ID)
	}
	if o.Expire < 0 {
		return fmt.Errorf("%w: op %d: negative expire", ErrInvalidOp, o.ID)
	}
	return nil
}

// Event is a waiting Acquire that an entry resolved (code ok = granted).
type Event struct {
	RequestID string   `json:"rid"`
	Code      string   `json:"code"`
	Keys      []string `json:"keys,omitempty"`
	Owner     string   `json:"owner,omitempty"`
	Tokens    []uint64 `json:"tokens,omitempty"`
}

// Entry is one line of a node's journal: one applied Raft entry, or a
// snapshot-restore marker.
type Entry struct {
	Index     uint64   `json:"i"`
	Time      int64    `json:"t"`  // cluster time, ns
	Op        string   `json:"op"` // tick, acquire, release, release_all, refresh, cancel_wait, force_release
	RequestID string   `json:"rid,omitempty"`
	Code      string   `json:"code"` // ok, pending, busy, timed_out, not_held, cancelled, invalid, exhausted, unknown
	Keys      []string `json:"keys,omitempty"`
	Owner     string   `json:"owner,omitempty"`
	Tokens    []uint64 `json:"tokens,omitempty"`
	Released  bool     `json:"released,omitempty"`
	Count     int      `json:"count,omitempty"`
	Duplicate bool     `json:"dup,omitempty"`
	Expired   int      `json:"expired,omitempty"` // locks that expired at this entry
	Events    []Event  `json:"events,omitempty"`  // waiting acquires resolved at this entry (code ok = granted)
	// Restore is set on a line that says "snapshot restored up to this
	// index" (no other fields): the node skipped entries up to it.
	Restore uint64 `json:"restore,omitempty"`
}

// Journal entry operations and result codes, as the node writes them.
const (
	EntryTick         = "tick"
	EntryAcquire      = "acquire"
	EntryRelease      = "release"
	EntryReleaseAll   = "release_all"
	EntryRefresh      = "refresh"
	EntryCancelWait   = "cancel_wait"
	EntryForceRelease = "force_release"

	CodeOK        = "ok"
	CodePending   = "pending"
	CodeBusy      = "busy"
	CodeTimedOut  = "timed_out"
	CodeNotHeld   = "not_held"
	CodeCancelled = "cancelled"
	CodeInvalid   = "invalid"
	CodeExhausted = "exhausted"
	CodeUnknown   = "unknown"
)

// IsRestore reports whether the line is a snapshot-restore marker.
func (e *Entry) IsRestore() bool { return e.Restore != 0 }

// Grant is one key granted by an entry, directly or by a hand-off.
type Grant struct {
	Index     uint64
	Key       string
	Owner     string
	Token     uint64
	RequestID string
	HandOff   bool // granted to a waiter (an Event), not by the entry's own Acquire
}

// Grants lists the keys this entry granted: its own Acquire when the code is
// ok and it is not a duplicate, and every hand-off event with code ok, in
// that order. Keys and Tokens are paired by position; a token missing for a
// key is reported as 0.
func (e *Entry) Grants() []Grant {
	var out []Grant
	add := func(keys []string, tokens []uint64, owner, rid string, handOff bool) {
		for i, k := range keys {
			var tok uint64
			if i < len(tokens) {
				tok = tokens[i]
			}
			out = append(out, Grant{Index: e.Index, Key: k, Owner: owner, Token: tok, RequestID: rid, HandOff: handOff})
		}
	}
	if e.Op == EntryAcquire && e.Code == CodeOK && !e.Duplicate {
		add(e.Keys, e.Tokens, e.Owner, e.RequestID, false)
	}
	for _, ev := range e.Events {
		if ev.Code == CodeOK {
			add(ev.Keys, ev.Tokens, ev.Owner, ev.RequestID, true)
		}
	}
	return out
}

// MaxToken returns the highest of tokens, or 0 if there is none.
func MaxToken(tokens []uint64) uint64 {
	if len(tokens) == 0 {
		return 0
	}
	return slices.Max(tokens)
}

// Applied returns a journal's applied entries in index order, one per index
// (the first line seen for it: repeats after a restart should be identical,
// which the Converged checker verifies), without restore markers.
func Applied(journal []Entry) []Entry {
	seen := make(map[uint64]bool, len(journal))
	out := make([]Entry, 0, len(journal))
	for _, e := range journal {
		if e.IsRestore() || seen[e.Index] {
			continue
		}
		seen[e.Index] = true
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b Entry) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
	return out
}

// RestoredUpTo returns the highest index a journal says it skipped through a
// snapshot restore, or 0.
func RestoredUpTo(journal []Entry) uint64 {
	var m uint64
	for _, e := range journal {
		m = max(m, e.Restore)
	}
	return m
}

// FormatTime renders ns since the run started as seconds, e.g. "12.345678s",
// or "+inf" for Infinity.
func FormatTime(ns int64) string {
	if ns == Infinity {
		return "+inf"
	}
	return fmt.Sprintf("%.6fs", float64(ns)/1e9)
}
