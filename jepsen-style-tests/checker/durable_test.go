package checker

import (
	"slices"
	"testing"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// durableHistory: a direct grant (r1, token 5), a release (r2), a waiting
// acquire granted by hand-off (r4: pending at 10, granted at 12, token 12),
// a refresh (r5), and a resolved acquire (r6, token 20), each acknowledged.
func durableHistory() ([]history.Op, []history.Entry) {
	var b h
	b.acquire(1, "a", 0, 10, ok, 5, 100)        // r1
	b.release(1, "a", 20, 30, ok, true, 0)      // r2
	b.acquire(2, "z", 21, 22, fail, 0, 100)     // r3: failed, not required
	b.acquire(2, "b", 40, 60, ok, 12, 100)      // r4
	b.refresh(2, "b", 70, 80, ok, 100)          // r5
	r := b.acquire(3, "c", 90, 95, ok, 20, 100) // r6
	r.Resolved, r.Deadline = true, 0
	b.acquire(4, "u", 96, 97, unknown, 0, 100) // r7: unknown, not required
	// An acknowledged release without a request id cannot be looked up.
	b.add(history.Op{Client: 5, Kind: history.KindRelease, Owner: "v", Invoke: ms(1), Return: ms(2), Outcome: ok, RequestID: "-"}).RequestID = ""

	rel := entry(7, history.EntryRelease, "r2", history.CodeOK, keys("k"), "a")
	rel.Released = true
	grant := entry(12, history.EntryTick, "", history.CodeOK, nil, "")
	grant.Events = []history.Event{{RequestID: "r4", Code: history.CodeOK, Keys: keys("k"), Owner: "b", Tokens: []uint64{12}}}
	rel2 := entry(15, history.EntryRelease, "rx", history.CodeOK, keys("k"), "b")
	rel2.Released = true
	j := []history.Entry{
		entry(5, history.EntryAcquire, "r1", history.CodeOK, keys("k"), "a", 5),
		entry(6, history.EntryAcquire, "r3", history.CodeBusy, keys("k"), "z"),
		rel,
		entry(8, history.EntryAcquire, "r8", history.CodeOK, keys("k"), "y", 8),
		entry(10, history.EntryAcquire, "r4", history.CodePending, keys("k"), "b"),
		grant,
		entry(13, history.EntryRefresh, "r5", history.CodeOK, keys("k"), "b", 12),
		rel2,
		entry(20, history.EntryAcquire, "r6", history.CodeOK, keys("k"), "c", 20),
	}
	return b.ops, j
}

func nodes(j []history.Entry) map[string][]history.Entry {
	return map[string][]history.Entry{"n1": slices.Clone(j), "n2": slices.Clone(j), "n3": slices.Clone(j)}
}

// Promise 4: no acknowledged acquire, release or refresh is lost.
func TestDurable(t *testing.T) {
	t.Run("all acknowledged ops on every node", func(t *testing.T) {
		ops, j := durableHistory()
		r := Durable(ops, nodes(j))
		wantOK(t, r)
		if r.Stats["acknowledged"] != 5 || r.Stats["no_request_id"] != 1 {
			t.Fatalf("stats = %v, want 5 acknowledged, 1 without request id", r.Stats)
		}
	})
	t.Run("a node that skipped the index through a snapshot restore", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		// n3 was restored from a snapshot up to 13 and re-applied 15 and 20
		// twice (a restart).
		js["n3"] = append([]history.Entry{{Restore: 13}}, j[7:]...)
		js["n3"] = append(js["n3"], history.Entry{Restore: 13})
		js["n3"] = append(js["n3"], j[7:]...)
		r := Durable(ops, js)
		wantOK(t, r)
		if r.Stats["excused_by_restore"] != 4 {
			t.Fatalf("stats = %v, want 4 excused (r1, r2, r4, r5 on n3)", r.Stats)
		}
	})
	t.Run("a hand-off seen only as its event", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n2"] = slices.DeleteFunc(js["n2"], func(e history.Entry) bool { return e.Index == 10 }) // pending line gone
		wantOK(t, Durable(ops, js))
	})
	t.Run("acknowledged acquire in no journal", func(t *testing.T) {
		ops, j := durableHistory()
		j = slices.DeleteFunc(j, func(e history.Entry) bool { return e.RequestID == "r1" })
		wantFail(t, Durable(ops, nodes(j)), "acknowledged acquire op 1", "rid r1", "in no journal")
	})
	t.Run("resolved acquire in no journal", func(t *testing.T) {
		ops, j := durableHistory()
		j = slices.DeleteFunc(j, func(e history.Entry) bool { return e.RequestID == "r6" })
		wantFail(t, Durable(ops, nodes(j)), "resolved-ok acquire op 6")
	})
	t.Run("lost on one node", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n2"] = slices.DeleteFunc(js["n2"], func(e history.Entry) bool { return e.Index == 12 })
		wantFail(t, Durable(ops, js), "node n2: lost acknowledged acquire op 4", "index 12 on n1,n3")
	})
	t.Run("a restore before the index does not excuse", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n3"] = append([]history.Entry{{Restore: 4}}, j[1:]...)
		wantFail(t, Durable(ops, js), "node n3: lost acknowledged acquire op 1")
	})
	t.Run("a node whose journal ends early", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n1"] = j[:7]
		wantFail(t, Durable(ops, js), "node n1: journal ends at index 13", "op 6")
	})
	t.Run("a node says busy for an acknowledged acquire", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n2"][0].Code, js["n2"][0].Tokens = history.CodeBusy, nil
		wantFail(t, Durable(ops, js), "node n2: index 5: acquire busy contradicts acknowledged acquire op 1", "node n2: lost")
	})
	t.Run("a different token", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n1"][0].Tokens = []uint64{6}
		wantFail(t, Durable(ops, js), "node n1: index 5: acquire ok tokens [6] contradicts")
	})
	t.Run("a different token in a hand-off", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n3"][5].Events = []history.Event{{RequestID: "r4", Code: history.CodeOK, Keys: keys("k"), Owner: "b", Tokens: []uint64{11}}}
		wantFail(t, Durable(ops, js), "node n3: index 12: hand-off event ok tokens [11] contradicts")
	})
	t.Run("a timed-out wait for an acknowledged acquire", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n3"][5].Events = []history.Event{{RequestID: "r4", Code: history.CodeTimedOut, Keys: keys("k"), Owner: "b"}}
		wantFail(t, Durable(ops, js), "hand-off event timed_out contradicts")
	})
	t.Run("a release flag that differs", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n1"][2].Released = false
		wantFail(t, Durable(ops, js), "release ok released=false contradicts acknowledged release op 2")
	})
	t.Run("a refresh the journal says was not held", func(t *testing.T) {
		ops, j := durableHistory()
		js := nodes(j)
		js["n2"][6].Code, js["n2"][6].Tokens = history.CodeNotHeld, nil
		wantFail(t, Durable(ops, js), "refresh not_held contradicts acknowledged refresh op 5")
	})
	t.Run("no journals at all", func(t *testing.T) {
		ops, _ := durableHistory()
		wantFail(t, Durable(ops, nil), "in no journal")
	})
}
