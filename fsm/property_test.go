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

// TestProperties runs random command sequences against the Table, a naive
// model, and a second Table that is snapshotted and restored at random
// points. After every step it checks: the same results from all three; the
// table's internal invariants (one holder per key, FIFO queues, no overdue
// lock or waiter, no grantable waiter left waiting); fencing tokens strictly
// increase per key; a replayed request id changes nothing.
func TestProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := DefaultConfig()
		tab, twin, ref := New(cfg), New(cfg), newModel(cfg)
		var (
			index   uint64
			now     = int64(time.Hour)
			past    []Command // commands with request ids, for replays
			lastTok = map[string]uint64{}
			ridSeq  int
		)
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
			if err := sameState(tab, ref); err != nil {
				rt.Fatalf("step %d %s %+v: state vs model: %v", step, c.Op, c, err)
			}
			if replay && got.Duplicate {
				if after := stateWithoutIndex(tab); !bytes.Equal(before, after) {
					rt.Fatalf("step %d: replay of request %q changed the state", step, c.RequestID)
				}
			}
			for k, l := range tab.locks {
				if prev := lastTok[k]; l.token < prev {
					rt.Fatalf("step %d: token of %q went from %d to %d", step, k, prev, l.token)
				}
				lastTok[k] = l.token
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
	genKeys   = []string{"a", "b", "c", "d"}
	genOwners = []string{"", "o1", "o2", "o3"}
)

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
	attempt := func() uint64 { // version 2: which node's handling of the call
		if rapid.Bool().Draw(rt, "attempt?") {
			return uint64(rapid.IntRange(1, 3).Draw(rt, "attempt"))
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
	case 3, 4:
		c.Op, c.Expire, c.Wait, c.RequestID, c.Attempt = OpAcquire, dur("expire"), dur("wait")+time.Second, newRID(), attempt()
	case 5:
		c.Op = OpRelease
		if rapid.Bool().Draw(rt, "token?") {
			c.HasToken = true
			if l, ok := tab.Get(keys[0]); ok && rapid.Bool().Draw(rt, "current?") {
				c.Token = l.Token
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
		c = Command{Op: OpAbandon, RequestID: oldRID("abandon"), Attempt: uint64(rapid.IntRange(1, 3).Draw(rt, "attempt"))}
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
	if len(t.locks) != len(m.locks) {
		return fmt.Errorf("%d locks vs %d", len(t.locks), len(m.locks))
	}
	for k, l := range t.locks {
		ml := m.locks[k]
		if ml == nil || ml.owner != l.owner || ml.token != l.token || ml.deadline != l.t.deadline || ml.expire != l.expire {
			return fmt.Errorf("lock %q: table %+v vs model %+v", k, *l, ml)
		}
	}
	if len(t.waiters) != len(m.waiters) {
		return fmt.Errorf("%d waiters vs %d", len(t.waiters), len(m.waiters))
	}
	for _, mw := range m.waiters {
		w := t.waiters[mw.rid]
		if w == nil || w.id != mw.id || w.t.deadline != mw.deadline {
			return fmt.Errorf("waiter %q differs", mw.rid)
		}
	}
	if len(t.records) != len(m.records) {
		return fmt.Errorf("%d records vs %d", len(t.records), len(m.records))
	}
	return nil
}
