package fsm

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// changeView rebuilds holds and queues from Result.Changes alone, as a
// watcher does: TestProperties checks after every entry that it agrees
// with the table (from an empty table, and from a State taken midway).
type changeView struct {
	holds  map[string]map[string]vHold // key -> owner -> hold
	queues map[string][]string         // key -> request ids in line
}

type vHold struct {
	mode             Mode
	limit, permits   uint32
	token            uint64
	expire, deadline int64
}

func newChangeView() *changeView {
	return &changeView{holds: map[string]map[string]vHold{}, queues: map[string][]string{}}
}

// viewFromState starts a view from a table's State, the way a watch starts
// from a snapshot.
func viewFromState(ks []KeyState, t *Table) *changeView {
	v := newChangeView()
	for _, k := range ks {
		if k.Held {
			m := map[string]vHold{}
			if len(k.Lock.Holders) == 0 {
				l := t.locks[k.Key]
				m[k.Lock.Owner] = vHold{token: k.Lock.Token, deadline: k.Lock.Deadline, expire: l.expire}
			}
			for _, h := range k.Lock.Holders {
				m[h.Owner] = vHold{mode: k.Lock.Mode, limit: k.Lock.Limit, permits: uint32(len(h.Slots)), token: h.Token,
					deadline: h.Deadline, expire: t.groups[k.Key].holders[h.Owner].expire}
			}
			v.holds[k.Key] = m
		}
		for _, w := range k.Waiters {
			v.queues[k.Key] = append(v.queues[k.Key], w.RequestID)
		}
	}
	return v
}

func (v *changeView) apply(changes []Change) error {
	for _, c := range changes {
		m := v.holds[c.Key]
		switch c.Kind {
		case ChangeAcquired, ChangeHandedOff, ChangeRefreshed:
			if m == nil {
				m = map[string]vHold{}
				v.holds[c.Key] = m
			}
			if _, ok := m[c.Owner]; c.Kind == ChangeRefreshed && !ok {
				return fmt.Errorf("refreshed %s/%s: not held", c.Key, c.Owner)
			}
			m[c.Owner] = vHold{mode: c.Mode, limit: c.Limit, permits: c.Permits, token: c.Token, expire: c.Expire, deadline: c.Deadline}
			if c.Kind == ChangeHandedOff {
				if err := v.leave(c); err != nil {
					return err
				}
			}
		case ChangeReleased, ChangeExpired, ChangeForceReleased:
			h, ok := m[c.Owner]
			if !ok || h.token != c.Token {
				return fmt.Errorf("%s %s/%s@%d: not held so", c.Kind, c.Key, c.Owner, c.Token)
			}
			delete(m, c.Owner)
			if len(m) == 0 {
				delete(v.holds, c.Key)
			}
		case ChangeWaiterJoined:
			v.queues[c.Key] = append(v.queues[c.Key], c.RequestID)
		case ChangeWaiterLeft:
			if c.Reason == 0 {
				return fmt.Errorf("waiter %q left %s without a reason", c.RequestID, c.Key)
			}
			if err := v.leave(c); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown change %v", c.Kind)
		}
	}
	return nil
}

func (v *changeView) leave(c Change) error {
	q := v.queues[c.Key]
	i := slices.Index(q, c.RequestID)
	if i < 0 {
		return fmt.Errorf("%s %s: %q not in the queue %q", c.Kind, c.Key, c.RequestID, q)
	}
	q = slices.Delete(q, i, i+1)
	if len(q) == 0 {
		delete(v.queues, c.Key)
	} else {
		v.queues[c.Key] = q
	}
	return nil
}

func viewHold(key, owner string, mode Mode, limit, permits uint32, token uint64, expire, deadline int64) string {
	return fmt.Sprintf("%s/%s:%s/%d/%d@%d+%d<%d", key, owner, mode, limit, permits, token, expire, deadline)
}

func (v *changeView) String() string {
	var s []string
	for k, m := range v.holds {
		for o, h := range m {
			s = append(s, viewHold(k, o, h.mode, h.limit, h.permits, h.token, h.expire, h.deadline))
		}
	}
	for k, q := range v.queues {
		s = append(s, k+"<-"+strings.Join(q, ","))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// viewOf is the table's holds and queues in changeView's form.
func viewOf(t *Table) string {
	var s []string
	for k, l := range t.locks {
		s = append(s, viewHold(k, l.owner, ModeExclusive, 0, 0, l.token, l.expire, l.t.deadline))
	}
	for k, g := range t.groups {
		for _, h := range g.holders {
			s = append(s, viewHold(k, h.owner, g.mode, g.limit, uint32(len(h.slots)), h.token, h.expire, h.t.deadline))
		}
	}
	for k, q := range t.queues {
		var ids []string
		for e := q.Front(); e != nil; e = e.Next() {
			ids = append(ids, e.Value.(*waiter).rid)
		}
		s = append(s, k+"<-"+strings.Join(ids, ","))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// kinds lists the changes as "kind key owner" strings.
func kinds(r *Result) []string {
	var s []string
	for _, c := range r.Changes {
		e := c.Kind.String() + " " + c.Key + " " + c.Owner
		if c.Previous != "" {
			e += " from " + c.Previous
		}
		if c.Reason != 0 {
			e += fmt.Sprintf(" reason %d", c.Reason)
		}
		s = append(s, e)
	}
	return s
}

// Each way a hold or a wait ends says which it was, so a watcher can tell
// an expiry from a release and a time-out from a cancel.
func TestChangeKinds(t *testing.T) {
	h := newHarness(t)
	want := func(r *Result, w ...string) {
		t.Helper()
		if got := kinds(r); !slices.Equal(got, w) {
			t.Fatalf("changes %q, want %q", got, w)
		}
	}
	want(h.apply(Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "a", Expire: time.Second}), "acquired k a")
	want(h.acquireWait("r1", "b", 0, time.Minute, "k"), "waiter_joined k b")
	want(h.acquireWait("r2", "c", 0, time.Second, "k"), "waiter_joined k c")
	h.advance(2 * time.Second) // a's lease and c's wait both end
	want(h.tick(), "expired k a", "handed_off k b from a", "waiter_left k c reason 1")
	want(h.apply(Command{Op: OpRefresh, Keys: []string{"k"}, Owner: "b"}), "refreshed k b")
	want(h.acquireWait("r3", "d", 0, time.Minute, "k"), "waiter_joined k d")
	want(h.apply(Command{Op: OpCancelWait, RequestID: "r3"}), "waiter_left k d reason 2")
	want(h.release("b", "k"), "released k b")
	want(h.acquire("e", "k"), "acquired k e")
	want(h.apply(Command{Op: OpForceRelease, Keys: []string{"k"}, RequestID: "f1"}), "force_released k e")
	want(h.release("nobody", "k"))
}
