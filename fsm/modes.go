package fsm

import (
	"cmp"
	"container/list"
	"fmt"
	"slices"
	"strings"
)

// Modes: a key is held exclusively (a *lock in Table.locks), or by a group
// of holders (a *group in Table.groups): shared holders of a read-write
// lock, or the holders of a semaphore's permits. A key is in at most one of
// the two maps. An exclusive request on a key held shared waits for (or
// upgrades) the shared holders: shared and exclusive are the two sides of
// one read-write lock. A semaphore key takes only semaphore requests with
// its limit. See DESIGN.md, "Modes".

// group is a key held in shared or semaphore mode: one hold per owner
// (shared and semaphore holds need a non-empty owner).
type group struct {
	mode    Mode
	limit   uint32 // semaphore: its permits in all; 0 when shared
	used    uint32 // semaphore: the permits its holders hold
	holders map[string]*hold
}

// hold is one holder's part of a group: a lock as an exclusive key has one
// (key, owner, token, deadline, owner links, timer) and, for a semaphore,
// the numbered slots of its permits (len(slots) is its permit count).
type hold struct {
	lock
	slots []uint32
}

// ask is what an Acquire (or a waiter) asks for on each of its keys.
type ask struct {
	owner   string
	mode    Mode
	permits uint32 // semaphore only
	limit   uint32 // semaphore only
}

// How a key's holders meet an ask (fit).
const (
	// blocked: the holders leave no room for it.
	blocked = iota
	// reentrant: the owner's own hold covers it (or upgrades): granted
	// whatever waits, as a re-entrant exclusive Acquire is.
	reentrant
	// room: the holders leave room; granted if nobody waits first.
	room
)

// fit tells how key k's holders meet a.
func (t *Table) fit(k string, a *ask) int {
	if l := t.locks[k]; l != nil {
		// A shared request by the exclusive holder is re-entrant: it holds
		// more than it asks for, and the key stays exclusive.
		if a.owner != "" && l.owner == a.owner && a.mode != ModeSemaphore {
			return reentrant
		}
		return blocked
	}
	g := t.groups[k]
	if g == nil {
		return room
	}
	h := g.holders[a.owner] // nil for the anonymous owner: groups have none
	if g.mode == ModeSemaphore {
		switch {
		case a.mode != ModeSemaphore || a.limit != g.limit:
			return blocked
		case h != nil && uint32(len(h.slots)) == a.permits:
			return reentrant
		case h != nil || g.used+a.permits > g.limit:
			return blocked
		}
		return room
	}
	switch {
	case a.mode == ModeShared && h != nil:
		return reentrant
	case a.mode == ModeShared:
		return room
	case a.mode == ModeExclusive && h != nil && len(g.holders) == 1:
		return reentrant // upgrade: the owner's shared hold is the only one
	}
	return blocked
}

// useOf tells how key k is used now: by its holders, else by the waiters
// of its queue (all of one use; see wrongMode). ok is false for a free key
// nobody waits for.
func (t *Table) useOf(k string) (mode Mode, limit uint32, ok bool) {
	if t.locks[k] != nil {
		return ModeExclusive, 0, true
	}
	if g := t.groups[k]; g != nil {
		return g.mode, g.limit, true
	}
	if q := t.queues[k]; q != nil {
		w := q.Front().Value.(*waiter)
		return w.mode, w.limit, true
	}
	return 0, 0, false
}

// wrongMode returns the first key whose use disagrees with a, and how: a
// semaphore request on a read-write key (exclusive or shared) or on a
// semaphore of another limit, a read-write request on a semaphore key, or
// a semaphore request by a holder of the key for other permits than it
// holds. Such a request fails at once, so the holders and waiters of a key
// are always of one use.
func (t *Table) wrongMode(keys []string, a *ask) (string, string) {
	for _, k := range keys {
		mode, limit, ok := t.useOf(k)
		if !ok {
			continue
		}
		switch {
		case (mode == ModeSemaphore) != (a.mode == ModeSemaphore):
			if mode == ModeSemaphore {
				return k, fmt.Sprintf("key %q is used as a semaphore (limit %d), the request is %s", k, limit, a.mode)
			}
			return k, fmt.Sprintf("key %q is used as a read-write lock (exclusive or shared), the request is a semaphore", k)
		case mode == ModeSemaphore && limit != a.limit:
			return k, fmt.Sprintf("key %q is a semaphore with limit %d, the request names limit %d", k, limit, a.limit)
		}
		if g := t.groups[k]; g != nil && a.mode == ModeSemaphore {
			if h := g.holders[a.owner]; h != nil && uint32(len(h.slots)) != a.permits {
				return k, fmt.Sprintf("owner %q holds %d permits of key %q, the request asks for %d (release it first)", a.owner, len(h.slots), k, a.permits)
			}
		}
	}
	return "", ""
}

// holdOf returns owner's hold on key, exclusive or in a group, or nil.
func (t *Table) holdOf(key, owner string) *lock {
	if l := t.locks[key]; l != nil {
		if l.owner == owner {
			return l
		}
		return nil
	}
	if g := t.groups[key]; g != nil {
		if h := g.holders[owner]; h != nil {
			return &h.lock
		}
	}
	return nil
}

// held is how many holds the table has: exclusive locks and group holds.
func (t *Table) held() int { return len(t.locks) + t.holds }

// addHold gives owner a new shared or semaphore hold on key k, with the
// current entry's index as its token; a semaphore hold takes the lowest
// free slots.
func (t *Table) addHold(k string, a *ask) *hold {
	g := t.groups[k]
	if g == nil {
		g = &group{mode: a.mode, limit: a.limit, holders: make(map[string]*hold, 1)}
		t.groups[k] = g
	}
	h := &hold{lock: lock{key: k, owner: a.owner, token: t.index}}
	h.t = timer{lock: &h.lock, idx: -1}
	if a.mode == ModeSemaphore {
		h.slots = g.freeSlots(a.permits)
		g.used += a.permits
	}
	g.holders[a.owner] = h
	t.holds++
	t.link(&h.lock)
	return h
}

// freeSlots returns the p lowest slot numbers no holder has.
func (g *group) freeSlots(p uint32) []uint32 {
	out := make([]uint32, 0, p)
	var next uint32
	if g.used > 0 {
		used := make([]uint32, 0, g.used)
		for _, h := range g.holders {
			used = append(used, h.slots...)
		}
		slices.Sort(used)
		for _, u := range used {
			for ; next < u && uint32(len(out)) < p; next++ {
				out = append(out, next)
			}
			if uint32(len(out)) == p {
				return out
			}
			next = u + 1
		}
	}
	for ; uint32(len(out)) < p; next++ {
		out = append(out, next)
	}
	return out
}

// dropHold takes l, a group hold, out of its group.
func (t *Table) dropHold(l *lock) {
	g := t.groups[l.key]
	g.used -= uint32(len(g.holders[l.owner].slots))
	delete(g.holders, l.owner)
	t.holds--
	if len(g.holders) == 0 {
		delete(t.groups, l.key)
	}
}

// candidates appends to work the waiters a hold that ended on key k may
// have made grantable: the first of k's queue, and, when one owner alone
// still holds k shared, that owner's waiters (an upgrade waits for exactly
// that).
func (t *Table) candidates(k string, work []*waiter) []*waiter {
	q := t.queues[k]
	if q == nil {
		return work
	}
	work = append(work, q.Front().Value.(*waiter))
	if g := t.groups[k]; g != nil && g.mode == ModeShared && len(g.holders) == 1 {
		for owner := range g.holders {
			work = t.waitersOf(owner, q, work)
		}
	}
	return work
}

// waitersOf appends the waiters of owner in queue q, if owner waits at all.
func (t *Table) waitersOf(owner string, q *list.List, work []*waiter) []*waiter {
	if owner == "" || t.ownerWaiters[owner] == 0 {
		return work
	}
	for e := q.Front(); e != nil; e = e.Next() {
		if v := e.Value.(*waiter); v.owner == owner {
			work = append(work, v)
		}
	}
	return work
}

// holderInfos describes a group's holders in grant order (token, then
// owner).
func (g *group) holderInfos() []HolderInfo {
	out := make([]HolderInfo, 0, len(g.holders))
	for _, h := range g.holders {
		out = append(out, HolderInfo{Owner: h.owner, Token: h.token, Deadline: h.t.deadline, Slots: slices.Clone(h.slots)})
	}
	slices.SortFunc(out, func(a, b HolderInfo) int {
		return cmp.Or(cmp.Compare(a.Token, b.Token), strings.Compare(a.Owner, b.Owner))
	})
	return out
}

// HolderInfo describes one holder of a shared or semaphore key.
type HolderInfo struct {
	Owner string
	Token uint64
	// Deadline is the hold's expiry in cluster time; 0: never expires.
	Deadline int64
	// Slots are a semaphore hold's permit slots (len: its permits).
	Slots []uint32
}
