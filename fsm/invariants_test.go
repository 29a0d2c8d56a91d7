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
			if t.locks[l.key] != l || l.owner != owner {
				return fmt.Errorf("owner list entry %q/%q does not match the lock", owner, l.key)
			}
			if l.next != nil && l.next.prev != l {
				return fmt.Errorf("owner %q: list broken after %q", owner, l.key)
			}
			if n++; n > len(t.locks) {
				return fmt.Errorf("owner lists hold more entries than the table has locks (a cycle?)")
			}
		}
	}
	if n != len(t.locks) {
		return fmt.Errorf("owner index has %d locks, table %d", n, len(t.locks))
	}
	timed := 0
	for k, l := range t.locks {
		if l.key != k {
			return fmt.Errorf("lock under %q has key %q", k, l.key)
		}
		if l.token == 0 || l.token > t.index {
			return fmt.Errorf("lock %q has token %d (index %d)", k, l.token, t.index)
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
		for e := q.Front(); e != nil; e = e.Next() {
			w := e.Value.(*waiter)
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
