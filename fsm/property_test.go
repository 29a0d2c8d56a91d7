package fsm

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The property test runs at least 1,000 random sequences unless the
	// caller asks for a number with -rapid.checks.
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("1000")
	}
	os.Exit(m.Run())
}

// TestProperties runs random command sequences, exclusive, shared and
// semaphore, against the Table, a naive model, and a second Table that is
// snapshotted and restored at random points. After every step it checks:
// the same results and states from all three (byte-identical snapshots);
// the table's internal invariants (FIFO queues, one use per key, no overdue
// lock or waiter, no grantable waiter left waiting); on the model's own
// state, that a semaphore's holders never hold more than its limit and an
// exclusive hold is alone on its key (a writer never overlaps a reader);
// that a resource fenced by DESIGN.md's rule accepts every current holder
// and refuses every stale one once a conflicting later grant has been seen;
// tokens never go back; a replayed request id changes nothing.
func TestProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := DefaultConfig()
		tab, twin, ref := New(cfg), New(cfg), newModel(cfg)
		var (
			index   uint64
			now     = int64(time.Hour)
			past    []Command // commands with request ids, for replays
			lastTok = map[string]uint64{}
			seen    = map[string]bool{}
			ridSeq  int
		)
		res := newFencedResource()
		if rapid.Bool().Draw(rt, "start at version 2?") {
			c := Command{Op: OpSetVersion, ClusterVersion: Version2, Time: now}
			index++
			tab.Apply(index, &c)
			twin.Apply(index, &c)
			ref.apply(index, &c)
		}
		view, late := newChangeView(), (*changeView)(nil)
		steps := rapid.IntRange(1, 80).Draw(rt, "steps")
		for step := 0; step < steps; step++ {
			now += int64(rapid.IntRange(0, 3000).Draw(rt, "advance_ms")) * int64(time.Millisecond)
			c, replay := genCommand(rt, tab, past, &ridSeq)
			if replay {
				c.Time = tab.Now() // no time passes: the replay alone must change nothing
			} else {
				c.Time = now
			}
			if c.RequestID != "" && !replay {
				past = append(past, c)
			}
			index++
			before := stateWithoutIndex(tab)

			got := tab.Apply(index, &c)
			want := ref.apply(index, &c)
			twinGot := twin.Apply(index, &c)

			if err := sameResult(got, want); err != nil {
				rt.Fatalf("step %d %s %+v: table vs model: %v", step, c.Op, c, err)
			}
			if err := sameResult(got, twinGot); err != nil {
				rt.Fatalf("step %d %s: table vs restored twin: %v", step, c.Op, err)
			}
			if err := tab.checkInvariants(); err != nil {
				rt.Fatalf("step %d %s %+v: %v", step, c.Op, c, err)
			}
			for _, v := range []*changeView{view, late} {
				if v == nil {
					continue
				}
				if err := v.apply(got.Changes); err != nil {
					rt.Fatalf("step %d %s %+v: changes %+v: %v", step, c.Op, c, got.Changes, err)
				}
				if want, have := viewOf(tab), v.String(); want != have {
					rt.Fatalf("step %d %s %+v: replayed changes %+v:\n got %s\nwant %s", step, c.Op, c, got.Changes, have, want)
				}
			}
			if late == nil && rapid.IntRange(0, 19).Draw(rt, "start a late view") == 0 {
				late = viewFromState(tab.State(StateOptions{}), tab)
			}
			if err := sameState(tab, ref); err != nil {
				rt.Fatalf("step %d %s %+v: state vs model: %v", step, c.Op, c, err)
			}
			if replay && got.Duplicate {
				if after := stateWithoutIndex(tab); !bytes.Equal(before, after) {
					rt.Fatalf("step %d: replay of request %q changed the state", step, c.RequestID)
				}
			}
			if err := newTokens(allLocks(tab), lastTok, seen); err != nil {
				rt.Fatalf("step %d %s %+v: %v", step, c.Op, c, err)
			}
			if err := ref.checkModes(); err != nil {
				rt.Fatalf("step %d %s %+v: %v", step, c.Op, c, err)
			}
			if err := res.step(allLocks(tab)); err != nil {
				rt.Fatalf("step %d %s %+v: %v", step, c.Op, c, err)
			}
			if rapid.IntRange(0, 9).Draw(rt, "snapshot") == 0 {
				b := twin.AppendSnapshot(nil)
				restored, err := Restore(cfg, b)
				if err != nil {
					rt.Fatalf("restore: %v", err)
				}
				if !bytes.Equal(b, restored.AppendSnapshot(nil)) {
					rt.Fatal("restored table writes a different snapshot")
				}
				if !bytes.Equal(b, tab.AppendSnapshot(nil)) {
					rt.Fatal("twin and table write different snapshots")
				}
				twin = restored
			}
		}
	})
}

var (
	genKeys    = []string{"a", "b", "c", "d"}
	genSemKeys = []string{"c", "d"} // semaphore requests: keys that read-write requests use too
	genOwners  = []string{"", "o1", "o2", "o3"}
)

// genMode draws an Acquire's mode onto c: exclusive half the time, else
// shared or a semaphore (limit 2 mostly, 3 sometimes, on c or d), mostly
// with an owner (anonymous ones are refused, which is tested too).
func genMode(rt *rapid.T, c *Command) {
	switch rapid.IntRange(0, 3).Draw(rt, "mode") {
	case 0, 1:
		return
	case 2:
		c.Mode = ModeShared
	case 3:
		c.Mode, c.Limit = ModeSemaphore, uint32(rapid.SampledFrom([]int{2, 2, 3}).Draw(rt, "limit"))
		c.Permits = uint32(rapid.IntRange(1, int(c.Limit)).Draw(rt, "permits"))
		c.Keys = rapid.SliceOfN(rapid.SampledFrom(genSemKeys), 1, 2).Draw(rt, "sem keys")
	}
	if c.Owner == "" && rapid.IntRange(0, 3).Draw(rt, "anonymous?") > 0 {
		c.Owner = "o1"
	}
}

func genCommand(rt *rapid.T, tab *Table, past []Command, ridSeq *int) (Command, bool) {
	if len(past) > 0 && rapid.IntRange(0, 7).Draw(rt, "replay?") == 0 {
		c := past[rapid.IntRange(0, len(past)-1).Draw(rt, "replay")]
		if rapid.Bool().Draw(rt, "reuse?") {
			return c, true
		}
		c.Owner += "-other" // the same request id for a different request
		return c, false
	}
	newRID := func() string {
		*ridSeq++
		return fmt.Sprintf("r%d", *ridSeq)
	}
	keys := rapid.SliceOfN(rapid.SampledFrom(genKeys), 1, 3).Draw(rt, "keys")
	owner := rapid.SampledFrom(genOwners).Draw(rt, "owner")
	dur := func(label string) time.Duration {
		return time.Duration(rapid.IntRange(0, 5).Draw(rt, label)) * time.Second
	}
	c := Command{Keys: keys, Owner: owner}
	if rapid.Bool().Draw(rt, "with id?") {
		c.RequestID = newRID()
	}
	attempt := func() uint64 { // version 2: which node (incarnation, high bits) and handling of the call
		if rapid.Bool().Draw(rt, "attempt?") {
			return Attempt(uint32(rapid.IntRange(1, 2).Draw(rt, "incarnation")), uint8(rapid.IntRange(0, 2).Draw(rt, "try")), uint32(rapid.IntRange(1, 3).Draw(rt, "attempt")))
		}
		return 0
	}
	oldRID := func(label string) string { return fmt.Sprintf("r%d", rapid.IntRange(1, *ridSeq+1).Draw(rt, label)) }
	switch rapid.IntRange(0, 11).Draw(rt, "op") {
	case 0, 1, 2:
		c.Op, c.Expire = OpAcquire, dur("expire")
		if c.RequestID != "" {
			c.Attempt = attempt()
		}
		genMode(rt, &c)
	case 3, 4:
		c.Op, c.Expire, c.Wait, c.RequestID, c.Attempt = OpAcquire, dur("expire"), dur("wait")+time.Second, newRID(), attempt()
		genMode(rt, &c)
	case 5:
		c.Op = OpRelease
		if rapid.Bool().Draw(rt, "token?") {
			c.HasToken = true
			if l := tab.holdOf(keys[0], owner); l != nil && rapid.Bool().Draw(rt, "current?") {
				c.Token = l.token
			} else {
				c.Token = uint64(rapid.IntRange(0, 50).Draw(rt, "token"))
			}
		}
	case 6:
		c.Op, c.Keys = OpReleaseAll, nil
		if rapid.Bool().Draw(rt, "prefixes?") {
			c.Keys = rapid.SliceOfN(rapid.SampledFrom([]string{"a", "b", "c", "x"}), 1, 2).Draw(rt, "prefixes")
		}
	case 7:
		c.Op, c.Expire = OpRefresh, dur("expire")
	case 8:
		c = Command{Op: OpCancelWait, RequestID: oldRID("cancel")}
		if rapid.IntRange(0, 3).Draw(rt, "scoped?") == 0 { // a restricted token's cancel
			c.Keys = rapid.SliceOfN(rapid.SampledFrom([]string{"a", "b", "x"}), 1, 2).Draw(rt, "scope")
		}
	case 10:
		if rapid.IntRange(0, 3).Draw(rt, "node?") == 0 { // a node restarted: all its attempts
			c = Command{Op: OpAbandonNode, Attempt: uint64(rapid.IntRange(1, 2).Draw(rt, "incarnation")) << 32}
		} else {
			c = Command{Op: OpAbandon, RequestID: oldRID("abandon"), Attempt: attempt() | 1}
		}
	case 11:
		c = Command{Op: OpSetVersion, ClusterVersion: uint32(rapid.IntRange(1, 2).Draw(rt, "version"))}
	case 9:
		if rapid.Bool().Draw(rt, "tick?") {
			c = Command{Op: OpTick}
		} else {
			c.Op, c.Owner = OpForceRelease, ""
		}
	}
	return c, false
}

func holdString(key, owner string, mode Mode, limit uint32, slots []uint32, token uint64, expire, deadline int64) string {
	return fmt.Sprintf("%s/%s:%s/%d%v@%d+%d<%d", key, owner, mode, limit, slots, token, expire, deadline)
}

// tableHolds lists every hold of the table, sorted: the state the model
// must agree with.
func tableHolds(t *Table) string {
	var s []string
	for k, l := range t.locks {
		s = append(s, holdString(k, l.owner, ModeExclusive, 0, nil, l.token, l.expire, l.t.deadline))
	}
	for k, g := range t.groups {
		for _, h := range g.holders {
			s = append(s, holdString(k, h.owner, g.mode, g.limit, h.slots, h.token, h.expire, h.t.deadline))
		}
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func modelHolds(m *model) string {
	var s []string
	for _, h := range m.holds {
		s = append(s, holdString(h.key, h.owner, h.mode, h.limit, h.slots, h.token, h.expire, h.deadline))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func stateWithoutIndex(t *Table) []byte {
	idx := t.index
	t.index = 0
	defer func() { t.index = idx }()
	return t.AppendSnapshot(nil)
}

func sameResult(a, b *Result) error {
	if a.Code != b.Code || a.Key != b.Key || a.Released != b.Released || a.Count != b.Count || a.Duplicate != b.Duplicate {
		return fmt.Errorf("got %s key=%q released=%v count=%d dup=%v, want %s key=%q released=%v count=%d dup=%v",
			a.Code, a.Key, a.Released, a.Count, a.Duplicate, b.Code, b.Key, b.Released, b.Count, b.Duplicate)
	}
	if a.Code == CodeInvalid {
		return nil
	}
	if !slices.Equal(a.Keys, b.Keys) || !slices.Equal(a.Tokens, b.Tokens) || !slices.Equal(a.Deadlines, b.Deadlines) {
		return fmt.Errorf("got keys %q tokens %v deadlines %v, want %q %v %v", a.Keys, a.Tokens, a.Deadlines, b.Keys, b.Tokens, b.Deadlines)
	}
	ea, eb := eventsByID(a.Events), eventsByID(b.Events)
	if ea != eb {
		return fmt.Errorf("events:\n got %s\nwant %s", ea, eb)
	}
	return nil
}

func eventsByID(evs []Result) string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("%s:%s:%v:%v", e.RequestID, e.Code, e.Tokens, e.Deadlines))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func sameState(t *Table, m *model) error {
	if t.now != m.now {
		return fmt.Errorf("now %d vs %d", t.now, m.now)
	}
	if th, mh := tableHolds(t), modelHolds(m); th != mh {
		return fmt.Errorf("holds:\n table %s\n model %s", th, mh)
	}
	if len(t.waiters) != len(m.waiters) {
		return fmt.Errorf("%d waiters vs %d", len(t.waiters), len(m.waiters))
	}
	for _, mw := range m.waiters {
		w := t.waiters[mw.rid]
		if w == nil || w.id != mw.id || w.t.deadline != mw.deadline || w.ask != mw.ask {
			return fmt.Errorf("waiter %q differs", mw.rid)
		}
	}
	if len(t.records) != len(m.records) {
		return fmt.Errorf("%d records vs %d", len(t.records), len(m.records))
	}
	return nil
}

// holdsOf lists the holds of held keys, exclusive or not.
func holdsOf(locks []LockInfo) []fencedHold {
	var out []fencedHold
	for _, li := range locks {
		if li.Mode == ModeExclusive {
			out = append(out, fencedHold{key: li.Key, owner: li.Owner, mode: ModeExclusive, token: li.Token})
			continue
		}
		for _, hi := range li.Holders {
			out = append(out, fencedHold{key: li.Key, owner: hi.Owner, mode: li.Mode, token: hi.Token, slots: hi.Slots})
		}
	}
	return out
}

// newTokens checks that every hold not seen before has a token above every
// token seen on its key before this step (holds granted in one entry share
// it): tokens strictly increase in the order grants happen, whatever the
// mode, and a writer's token is above every reader it excluded.
func newTokens(locks []LockInfo, last map[string]uint64, seen map[string]bool) error {
	next := map[string]uint64{}
	for _, h := range holdsOf(locks) {
		if !seen[h.id()] {
			if h.token <= last[h.key] {
				return fmt.Errorf("new hold %s: token not above %d, the highest granted on the key before", h.id(), last[h.key])
			}
			seen[h.id()] = true
		}
		next[h.key] = max(next[h.key], h.token)
	}
	for k, v := range next {
		last[k] = max(last[k], v)
	}
	return nil
}

// allLocks lists every held key of the table.
func allLocks(t *Table) []LockInfo {
	l, _ := t.List(ListOptions{})
	return l
}

// checkModes checks, on the model's own state, what modes promise: an
// exclusive hold is the only hold on its key (a writer never overlaps a
// reader), a key's holds are of one use, and a semaphore's holds take at
// most its limit in permits, each slot held once.
func (m *model) checkModes() error {
	byKey := map[string][]*mHold{}
	for _, h := range m.holds {
		byKey[h.key] = append(byKey[h.key], h)
	}
	for k, hs := range byKey {
		var used uint32
		slots := map[uint32]bool{}
		for _, h := range hs {
			if h.mode == ModeExclusive && len(hs) > 1 {
				return fmt.Errorf("key %q: an exclusive hold beside %d others", k, len(hs)-1)
			}
			if h.mode != hs[0].mode || h.limit != hs[0].limit {
				return fmt.Errorf("key %q: holds of %s/%d and %s/%d", k, h.mode, h.limit, hs[0].mode, hs[0].limit)
			}
			for _, s := range h.slots {
				if slots[s] || s >= h.limit {
					return fmt.Errorf("key %q: slot %d twice or not below the limit %d", k, s, h.limit)
				}
				slots[s] = true
			}
			used += uint32(len(h.slots))
		}
		if hs[0].mode == ModeSemaphore && used > hs[0].limit {
			return fmt.Errorf("key %q: %d permits held, limit %d", k, used, hs[0].limit)
		}
	}
	return nil
}

// fencedResource is a resource that follows DESIGN.md's fencing rule
// ("Modes"): per key the highest token of an accepted exclusive operation
// (W) and of any accepted operation (A), and per semaphore slot the
// highest token accepted under it (S). An exclusive holder's operation is
// accepted iff its token >= A; a shared holder's iff >= W; a semaphore
// holder's iff >= W and >= S of each of its slots.
type fencedResource struct {
	w, a  map[string]uint64
	slot  map[string]uint64 // "key/slot"
	stale []fencedHold      // holds that ended, newest last
	seen  []fencedHold      // every hold seen, for "a later conflicting grant"
	last  map[string]fencedHold
}

type fencedHold struct {
	key, owner string
	mode       Mode
	token      uint64
	slots      []uint32
}

func (h fencedHold) id() string { return fmt.Sprintf("%s/%s/%s/%d", h.key, h.owner, h.mode, h.token) }

func newFencedResource() *fencedResource {
	return &fencedResource{w: map[string]uint64{}, a: map[string]uint64{}, slot: map[string]uint64{}, last: map[string]fencedHold{}}
}

func (f *fencedResource) op(h fencedHold) bool {
	switch h.mode {
	case ModeExclusive:
		if h.token < f.a[h.key] {
			return false
		}
		f.w[h.key] = h.token
	case ModeShared:
		if h.token < f.w[h.key] {
			return false
		}
	case ModeSemaphore:
		if h.token < f.w[h.key] {
			return false
		}
		for _, s := range h.slots {
			if h.token < f.slot[fmt.Sprintf("%s/%d", h.key, s)] {
				return false
			}
		}
		for _, s := range h.slots {
			f.slot[fmt.Sprintf("%s/%d", h.key, s)] = h.token
		}
	}
	f.a[h.key] = max(f.a[h.key], h.token)
	return true
}

// conflicts tells whether later, a grant after h on h's key, must fence h
// out: anything after an exclusive hold; an exclusive hold after anything;
// a semaphore hold that shares a slot with h.
func conflicts(h, later fencedHold) bool {
	if later.key != h.key || later.token <= h.token {
		return false
	}
	if h.mode == ModeExclusive || later.mode == ModeExclusive {
		return true
	}
	for _, s := range later.slots {
		if slices.Contains(h.slots, s) {
			return true
		}
	}
	return false
}

// step lets every current holder operate (each must be accepted), then
// every holder whose hold ended try again: accepted only if no conflicting
// later grant has operated.
func (f *fencedResource) step(locks []LockInfo) error {
	cur := map[string]fencedHold{}
	for _, h := range holdsOf(locks) {
		cur[h.id()] = h
	}
	for id, h := range f.last {
		if _, ok := cur[id]; !ok {
			f.stale = append(f.stale, h)
		}
	}
	if len(f.stale) > 64 {
		f.stale = f.stale[len(f.stale)-64:]
	}
	ids := make([]string, 0, len(cur))
	for id := range cur {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		h := cur[id]
		if _, ok := f.last[id]; !ok {
			f.seen = append(f.seen, h)
		}
		if !f.op(h) {
			return fmt.Errorf("fencing: current holder %s (slots %v) refused", id, h.slots)
		}
	}
	f.last = cur
	for _, h := range f.stale {
		fenced := slices.ContainsFunc(f.seen, func(later fencedHold) bool { return conflicts(h, later) })
		if f.op(h) && fenced {
			return fmt.Errorf("fencing: stale holder %s (slots %v) accepted after a conflicting later grant", h.id(), h.slots)
		}
	}
	return nil
}
