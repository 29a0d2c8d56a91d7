package client

import (
	"fmt"
	"maps"
	"slices"
	"time"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// Mode is how a lock holds its keys.
type Mode int

// The modes of a lock (see the README's "Shared locks and semaphores").
const (
	// Exclusive: one holder at a time (the default).
	Exclusive Mode = iota
	// Shared: any number of shared holders, or one exclusive holder: a
	// shared and an exclusive lock on one key are the two sides of a
	// read-write lock. A waiting exclusive Acquire is not passed by later
	// shared ones.
	Shared
	// Semaphore: holders take at most the key's limit of permits at once.
	Semaphore
)

func (m Mode) String() string {
	switch m {
	case Exclusive:
		return "exclusive"
	case Shared:
		return "shared"
	case Semaphore:
		return "semaphore"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// MaxLimit is the largest semaphore limit the server accepts.
const MaxLimit = 1000

// WithShared makes the lock a shared (read) lock: many shared holders at
// once, no exclusive (write) holder meanwhile. It needs an owner
// (WithOwner; Execute has one of its own). An exclusive Acquire by an
// owner whose shared lock is the key's only holder upgrades it (a new
// fencing token).
func WithShared() LockOption { return func(o *lockOptions) { o.mode = Shared } }

// WithSemaphore makes the lock take permits of a counting semaphore with
// limit permits in all (1 to MaxLimit) on each key; every lock on the key
// must name the same limit. The lock's Slots are the numbered permits it
// holds, the unit of fencing: a resource keeps the highest token per key
// and slot. It needs an owner (WithOwner; Execute has one of its own).
func WithSemaphore(limit, permits int) LockOption {
	return func(o *lockOptions) { o.mode, o.limit, o.permits = Semaphore, limit, permits }
}

func (o lockOptions) validateMode() error {
	switch {
	case o.mode == Semaphore && (o.limit < 1 || o.limit > MaxLimit):
		return fmt.Errorf("%w: limit: %d, must be 1 to %d", ErrInvalidArgument, o.limit, MaxLimit)
	case o.mode == Semaphore && (o.permits < 1 || o.permits > o.limit):
		return fmt.Errorf("%w: permits: %d, must be 1 to the limit %d", ErrInvalidArgument, o.permits, o.limit)
	case o.mode != Exclusive && o.owner == "":
		return fmt.Errorf("%w: owner_id: a %s lock needs an owner (WithOwner)", ErrInvalidArgument, o.mode)
	}
	return nil
}

// setMode puts the lock options' mode on an AcquireRequest.
func (o lockOptions) setMode(req *raftlockv1.AcquireRequest) {
	switch o.mode {
	case Shared:
		req.Mode = raftlockv1.LockMode_LOCK_MODE_SHARED
	case Semaphore:
		req.Mode = raftlockv1.LockMode_LOCK_MODE_SEMAPHORE
		req.Limit, req.Permits = uint32(o.limit), uint32(o.permits)
	}
}

func modeOf(m raftlockv1.LockMode) Mode {
	switch m {
	case raftlockv1.LockMode_LOCK_MODE_SHARED:
		return Shared
	case raftlockv1.LockMode_LOCK_MODE_SEMAPHORE:
		return Semaphore
	}
	return Exclusive
}

// Mode returns how the lock holds its keys.
func (l *Lock) Mode() Mode { return l.mode }

// Limit returns a semaphore lock's limit (0 for the other modes).
func (l *Lock) Limit() int { return l.limit }

// Slots returns a semaphore lock's slots on each key, one per permit (nil
// for the other modes). With its fencing token (Tokens), a slot is what a
// resource fences: it keeps the highest token seen per key and slot and
// refuses lower ones, so a stale holder of slot s is refused once slot s
// has been granted again and used.
func (l *Lock) Slots() map[string][]uint32 {
	if l.slots == nil {
		return nil
	}
	m := maps.Clone(l.slots)
	for k, v := range m {
		m[k] = slices.Clone(v)
	}
	return m
}

// Holder is one holder of a shared or semaphore key, as Get and List
// report it.
type Holder struct {
	Owner string
	Token uint64
	// Expires is false for a hold that never expires.
	Expires   bool
	ExpiresIn time.Duration
	// Slots are a semaphore hold's slots, one per permit.
	Slots []uint32
}

func holdersOf(hs []*raftlockv1.Holder) []Holder {
	var out []Holder
	for _, h := range hs {
		ho := Holder{Owner: h.OwnerId, Token: h.FencingToken, Slots: h.Slots}
		if h.ExpiresIn != nil {
			ho.Expires, ho.ExpiresIn = true, h.ExpiresIn.AsDuration()
		}
		out = append(out, ho)
	}
	return out
}
