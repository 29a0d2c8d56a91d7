package fsm

import "strings"

// timer is an entry of the deadline heap: a lock's expiry or a waiter's
// wait deadline. Exactly one of lock and waiter is set.
type timer struct {
	deadline int64
	idx      int // position in the heap; -1 when not in it
	lock     *lock
	waiter   *waiter
}

// less is a total order on timers (deadline, then locks before waiters, then
// key and owner, or waiter id), so expiries happen in the same order on
// every replica whatever the heap's layout. The owner tells apart the
// holds of one shared or semaphore key, whose order decides which slots
// and holders a hand-off between them sees.
func (a *timer) less(b *timer) bool {
	if a.deadline != b.deadline {
		return a.deadline < b.deadline
	}
	if (a.lock != nil) != (b.lock != nil) {
		return a.lock != nil
	}
	if a.lock != nil {
		if c := strings.Compare(a.lock.key, b.lock.key); c != 0 {
			return c < 0
		}
		return a.lock.owner < b.lock.owner
	}
	return a.waiter.id < b.waiter.id
}

// deadlines is an indexed binary min-heap of timers: push, remove and fix
// cost O(log n).
type deadlines []*timer

func (h *deadlines) push(t *timer) {
	t.idx = len(*h)
	*h = append(*h, t)
	h.up(t.idx)
}

func (h *deadlines) remove(t *timer) {
	if t.idx < 0 {
		return
	}
	i, last := t.idx, len(*h)-1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	t.idx = -1
	if i != last {
		h.fix(i)
	}
}

// set changes t's deadline and places it; deadline 0 takes it out.
func (h *deadlines) set(t *timer, deadline int64) {
	t.deadline = deadline
	switch {
	case deadline == 0:
		h.remove(t)
	case t.idx < 0:
		h.push(t)
	default:
		h.fix(t.idx)
	}
}

func (h deadlines) peek() *timer {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

func (h deadlines) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h deadlines) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h deadlines) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h[j].less(h[i]) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h deadlines) down(i0 int) bool {
	i, n := i0, len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h[r].less(h[l]) {
			j = r
		}
		if !h[j].less(h[i]) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}
