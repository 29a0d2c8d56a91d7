package fsm

import (
	"fmt"
)

// checkInvariants verifies the table's internal consistency: indexes agree
// with each other, queues are FIFO, the timer heap holds exactly what can
// expire, nothing overdue survives, and no waiter that could be granted is
// left waiting.
func (t *Table) checkInvariants() error {
	n := 0
	for owner, head := range t.owners {
		if head == nil || head.prev != nil {
			return fmt.Errorf("owner %q: the list does not start at its head", owner)
		}
		for l := head; l != nil; l = l.next {
			if t.holdOf(l.key, owner) != l || l.owner != owner {
				return fmt.Errorf("owner list entry %q/%q does not match the lock", owner, l.key)
			}
			if l.next != nil && l.next.prev != l {
				return fmt.Errorf("owner %q: list broken after %q", owner, l.key)
			}
			if n++; n > t.held() {
				return fmt.Errorf("owner lists hold more entries than the table has locks (a cycle?)")
			}
		}
	}
	if n != t.held() {
		return fmt.Errorf("owner index has %d locks, table %d", n, t.held())
	}
	all := make(map[string]*lock, len(t.locks))
	for k, l := range t.locks {
		all[k] = l
	}
	holds := 0
	for k, g := range t.groups {
		if err := t.checkGroup(k, g); err != nil {
			return err
		}
		holds += len(g.holders)
		for o, h := range g.holders {
			all[k+"\x00"+o] = &h.lock
		}
	}
	if holds != t.holds {
		return fmt.Errorf("groups hold %d, the count says %d", holds, t.holds)
	}
	timed := 0
	for name, l := range all {
		k := name
		if l.key != k && l.key+"\x00"+l.owner != name {
			return fmt.Errorf("lock under %q has key %q", k, l.key)
		}
		if l.token == 0 || l.token > t.index {
			return fmt.Errorf("lock %q has token %d (index %d)", k, l.token, t.index)
		}
		if l.t.lock != l || l.t.waiter != nil {
			return fmt.Errorf("lock %q: its timer points elsewhere", k)
		}
		if l.t.deadline != 0 {
			timed++
			if l.t.deadline <= t.now {
				return fmt.Errorf("lock %q overdue: deadline %d, now %d", k, l.t.deadline, t.now)
			}
			if l.t.idx < 0 || t.timers[l.t.idx] != &l.t {
				return fmt.Errorf("lock %q missing from the timers", k)
			}
		} else if l.t.idx >= 0 {
			return fmt.Errorf("lock %q without deadline is in the timers", k)
		}
	}
	queued := 0
	for k, q := range t.queues {
		if q.Len() == 0 {
			return fmt.Errorf("empty queue for %q", k)
		}
		var prev uint64
		mode, limit, _ := t.useOf(k)
		for e := q.Front(); e != nil; e = e.Next() {
			w := e.Value.(*waiter)
			if (w.mode == ModeSemaphore) != (mode == ModeSemaphore) || w.limit != limit {
				return fmt.Errorf("queue %q: waiter %q is %s/%d, the key is used as %s/%d", k, w.rid, w.mode, w.limit, mode, limit)
			}
			if t.waiters[w.rid] != w {
				return fmt.Errorf("queue %q holds an unknown waiter %q", k, w.rid)
			}
			if w.id <= prev {
				return fmt.Errorf("queue %q is not FIFO: %d after %d", k, w.id, prev)
			}
			prev = w.id
			queued++
		}
	}
	perWaiter := 0
	for rid, w := range t.waiters {
		perWaiter += len(w.keys)
		for i, k := range w.keys {
			if w.elems[i].Value.(*waiter) != w || t.queues[k] == nil {
				return fmt.Errorf("waiter %q not in the queue of %q", rid, k)
			}
		}
		if w.t.deadline <= t.now {
			return fmt.Errorf("waiter %q overdue", rid)
		}
		if w.t.idx < 0 || t.timers[w.t.idx] != &w.t {
			return fmt.Errorf("waiter %q missing from the timers", rid)
		}
		if rec := t.records[rid]; rec == nil || rec.code != CodePending {
			return fmt.Errorf("waiter %q has no pending record", rid)
		}
		if _, ok := t.grantable(w.keys, &w.ask, w); ok {
			return fmt.Errorf("waiter %q could be granted but waits", rid)
		}
	}
	if queued != perWaiter {
		return fmt.Errorf("queues hold %d entries, waiters need %d", queued, perWaiter)
	}
	if len(t.timers) != timed+len(t.waiters) {
		return fmt.Errorf("timers hold %d, want %d", len(t.timers), timed+len(t.waiters))
	}
	for i, tm := range t.timers {
		if tm.idx != i {
			return fmt.Errorf("timer %d has index %d", i, tm.idx)
		}
		if i > 0 && tm.less(t.timers[(i-1)/2]) {
			return fmt.Errorf("heap order broken at %d", i)
		}
	}
	pending := 0
	for rid, rec := range t.records {
		if rec.rid != rid {
			return fmt.Errorf("record under %q has id %q", rid, rec.rid)
		}
		if rec.code == CodePending {
			pending++
			if t.waiters[rid] == nil {
				return fmt.Errorf("pending record %q without waiter", rid)
			}
		}
	}
	if got := len(t.ring) - t.head + pending; got != len(t.records) {
		return fmt.Errorf("ring holds %d resolved + %d pending, records %d", len(t.ring)-t.head, pending, len(t.records))
	}
	if enc, size := len(t.AppendSnapshot(nil)), t.snapshotSize(); enc != size {
		return fmt.Errorf("snapshot of %d bytes, snapshotSize says %d", enc, size)
	}
	return nil
}

// checkGroup verifies a shared or semaphore key: not also exclusive,
// holders with owners and tokens, and for a semaphore: permits counted
// right, within the limit, each slot below it and held once.
func (t *Table) checkGroup(k string, g *group) error {
	if t.locks[k] != nil {
		return fmt.Errorf("key %q is both exclusive and %s", k, g.mode)
	}
	if len(g.holders) == 0 {
		return fmt.Errorf("group %q without holders", k)
	}
	if err := ValidateMode(g.mode, min(g.limit, 1), g.limit, "x"); err != nil || g.mode == ModeExclusive {
		return fmt.Errorf("group %q: mode %s limit %d: %v", k, g.mode, g.limit, err)
	}
	var used uint32
	slots := map[uint32]string{}
	for o, h := range g.holders {
		if o == "" || h.owner != o || h.key != k {
			return fmt.Errorf("group %q: holder %q is %q/%q", k, o, h.key, h.owner)
		}
		if h.token == 0 || h.token > t.index {
			return fmt.Errorf("group %q: holder %q has token %d (index %d)", k, o, h.token, t.index)
		}
		if (g.mode == ModeSemaphore) != (len(h.slots) > 0) {
			return fmt.Errorf("group %q: holder %q has %d slots in a %s key", k, o, len(h.slots), g.mode)
		}
		used += uint32(len(h.slots))
		for _, s := range h.slots {
			if s >= g.limit {
				return fmt.Errorf("group %q: slot %d of %q is not below the limit %d", k, s, o, g.limit)
			}
			if other, dup := slots[s]; dup {
				return fmt.Errorf("group %q: slot %d held by %q and %q", k, s, other, o)
			}
			slots[s] = o
		}
	}
	if used != g.used || used > g.limit && g.mode == ModeSemaphore {
		return fmt.Errorf("group %q: %d permits held, counted %d, limit %d", k, used, g.used, g.limit)
	}
	return nil
}
