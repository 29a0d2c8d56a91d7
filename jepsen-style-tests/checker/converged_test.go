package checker

import (
	"slices"
	"testing"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// convergedJournal is a short journal with a hand-off and an expiry.
func convergedJournal() []history.Entry {
	tick := entry(9, history.EntryTick, "", history.CodeOK, nil, "")
	tick.Expired = 1
	tick.Events = []history.Event{{RequestID: "r3", Code: history.CodeOK, Keys: keys("k"), Owner: "b", Tokens: []uint64{9}}}
	return []history.Entry{
		entry(3, history.EntryAcquire, "r1", history.CodeOK, keys("k"), "a", 3),
		entry(4, history.EntryAcquire, "r3", history.CodePending, keys("k"), "b"),
		tick,
		entry(11, history.EntryRelease, "r4", history.CodeOK, keys("k"), "b"),
	}
}

func clone(j []history.Entry) []history.Entry {
	out := slices.Clone(j)
	for i := range out {
		out[i].Events = slices.Clone(out[i].Events)
	}
	return out
}

// Promise 5: replicas apply the same entries with the same results.
func TestConverged(t *testing.T) {
	t.Run("identical journals", func(t *testing.T) {
		j := convergedJournal()
		r := Converged(map[string][]history.Entry{"n1": clone(j), "n2": clone(j), "n3": clone(j)})
		wantOK(t, r)
		if r.Stats["compared"] != 8 || r.Stats["shared_indexes"] != 4 {
			t.Fatalf("stats = %v, want 8 comparisons over 4 shared indexes", r.Stats)
		}
	})
	t.Run("a node that lags or skipped a prefix", func(t *testing.T) {
		j := convergedJournal()
		wantOK(t, Converged(map[string][]history.Entry{
			"n1": clone(j),
			"n2": clone(j[:2]),
			"n3": append([]history.Entry{{Restore: 8}}, clone(j[2:])...),
		}))
	})
	t.Run("repeated lines after a restart that agree", func(t *testing.T) {
		j := convergedJournal()
		again := append(clone(j), history.Entry{Restore: 3})
		again = append(again, clone(j[1:])...)
		r := Converged(map[string][]history.Entry{"n1": again, "n2": clone(j)})
		wantOK(t, r)
		if r.Stats["repeated_lines"] != 3 || r.Stats["restores"] != 1 {
			t.Fatalf("stats = %v", r.Stats)
		}
	})
	t.Run("nil and empty slices are equal", func(t *testing.T) {
		a := convergedJournal()
		b := clone(a)
		b[2].Keys = []string{}
		b[0].Events = []history.Event{}
		wantOK(t, Converged(map[string][]history.Entry{"n1": a, "n2": b}))
	})
	for _, tc := range []struct {
		name   string
		mutate func(e *history.Entry)
		want   string
	}{
		{"code", func(e *history.Entry) { e.Code = history.CodeBusy }, "code: ok vs busy"},
		{"tokens", func(e *history.Entry) { e.Tokens = []uint64{4} }, "tokens: [3] vs [4]"},
		{"owner", func(e *history.Entry) { e.Owner = "x" }, "owner: a vs x"},
		{"op", func(e *history.Entry) { e.Op = history.EntryRefresh }, "op: acquire vs refresh"},
		{"rid", func(e *history.Entry) { e.RequestID = "r9" }, "rid: r1 vs r9"},
		{"keys", func(e *history.Entry) { e.Keys = keys("k", "k2") }, "keys"},
		{"released", func(e *history.Entry) { e.Released = true }, "released: false vs true"},
		{"count", func(e *history.Entry) { e.Count = 2 }, "count: 0 vs 2"},
		{"dup", func(e *history.Entry) { e.Duplicate = true }, "dup: false vs true"},
		{"expired", func(e *history.Entry) { e.Expired = 1 }, "expired: 0 vs 1"},
		{"time", func(e *history.Entry) { e.Time++ }, "cluster time"},
		{"events", func(e *history.Entry) { e.Events = []history.Event{{RequestID: "r3", Code: history.CodeOK}} }, "events: 0 events vs 1 events"},
	} {
		t.Run("two journals disagree on "+tc.name, func(t *testing.T) {
			j := convergedJournal()
			other := clone(j)
			tc.mutate(&other[0])
			wantFail(t, Converged(map[string][]history.Entry{"n1": j, "n2": other}), "index 3: nodes n1 and n2 disagree: "+tc.want)
		})
	}
	t.Run("two journals disagree inside an event", func(t *testing.T) {
		j := convergedJournal()
		other := clone(j)
		other[2].Events[0].Tokens = []uint64{8}
		wantFail(t, Converged(map[string][]history.Entry{"n1": j, "n3": other}), "index 9: nodes n1 and n3 disagree: events[0]")
	})
	t.Run("a node's repeated line differs", func(t *testing.T) {
		j := convergedJournal()
		again := append(clone(j), history.Entry{Restore: 3})
		changed := clone(j[1:])
		changed[2].Released = true
		again = append(again, changed...)
		wantFail(t, Converged(map[string][]history.Entry{"n1": again}), "node n1: applied index 11 twice with different results: released")
	})
}
