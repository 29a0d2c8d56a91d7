package checker

import (
	"testing"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// goodJournal grants k to a (index 5), refuses z, releases k, grants k and
// k2 to c (index 9, retried at 11), queues b (index 10) and hands k to b
// when c's lock expires (index 12).
func goodJournal() []history.Entry {
	rel := entry(7, history.EntryRelease, "r2", history.CodeOK, keys("k"), "a")
	rel.Released = true
	handOff := entry(12, history.EntryTick, "", history.CodeOK, nil, "")
	handOff.Expired = 1
	handOff.Events = []history.Event{{RequestID: "r4", Code: history.CodeOK, Keys: keys("k"), Owner: "b", Tokens: []uint64{12}}}
	retry := entry(11, history.EntryAcquire, "r3", history.CodeOK, keys("k", "k2"), "c", 9, 9)
	retry.Duplicate = true
	return []history.Entry{
		entry(5, history.EntryAcquire, "r1", history.CodeOK, keys("k"), "a", 5),
		entry(6, history.EntryAcquire, "r9", history.CodeBusy, keys("k"), "z"),
		rel,
		entry(9, history.EntryAcquire, "r3", history.CodeOK, keys("k", "k2"), "c", 9, 9),
		entry(10, history.EntryAcquire, "r4", history.CodePending, keys("k"), "b"),
		retry,
		handOff,
	}
}

// Promise 3(a): grant tokens strictly increase per key in log order.
func TestFencingJournalTokens(t *testing.T) {
	t.Run("good journal", func(t *testing.T) {
		j := goodJournal()
		r := Fencing(nil, map[string][]history.Entry{"n1": j, "n2": j})
		wantOK(t, r)
		if r.Stats["grants"] != 2*4 || r.Stats["reentrant_grants"] != 0 { // a/k, c/k, c/k2, b/k per node; dup is no grant
			t.Fatalf("stats = %v, want 8 grants, none re-entrant", r.Stats)
		}
	})
	t.Run("token goes down", func(t *testing.T) {
		j := goodJournal()
		j[6].Events[0].Tokens = []uint64{4} // hand-off with a token below 9
		wantFail(t, Fencing(nil, map[string][]history.Entry{"n1": j}), "token 4 granted to b at index 12 (hand-off, rid r4) is not above token 9")
	})
	t.Run("token reused by another owner", func(t *testing.T) {
		j := []history.Entry{
			entry(5, history.EntryAcquire, "r1", history.CodeOK, keys("k"), "a", 5),
			entry(6, history.EntryRelease, "r2", history.CodeOK, keys("k"), "a"),
			entry(7, history.EntryAcquire, "r3", history.CodeOK, keys("k"), "b", 5),
		}
		wantFail(t, Fencing(nil, map[string][]history.Entry{"n2": j}), "node n2", "token 5 granted to b")
	})
	t.Run("re-entrant grant keeps the token", func(t *testing.T) {
		j := []history.Entry{
			entry(5, history.EntryAcquire, "r1", history.CodeOK, keys("k"), "a", 5),
			entry(6, history.EntryAcquire, "r2", history.CodeOK, keys("k"), "a", 5),
		}
		r := Fencing(nil, map[string][]history.Entry{"n1": j})
		wantOK(t, r)
		if r.Stats["reentrant_grants"] != 1 {
			t.Fatalf("stats = %v", r.Stats)
		}
	})
	t.Run("repeated lines after a restart are one grant", func(t *testing.T) {
		j := []history.Entry{
			entry(5, history.EntryAcquire, "r1", history.CodeOK, keys("k"), "a", 5),
			entry(6, history.EntryRelease, "r2", history.CodeOK, keys("k"), "a"),
			{Restore: 4},
			entry(5, history.EntryAcquire, "r1", history.CodeOK, keys("k"), "a", 5),
			entry(6, history.EntryRelease, "r2", history.CodeOK, keys("k"), "a"),
			entry(7, history.EntryAcquire, "r3", history.CodeOK, keys("k"), "b", 7),
		}
		wantOK(t, Fencing(nil, map[string][]history.Entry{"n1": j}))
	})
	t.Run("grant without a token", func(t *testing.T) {
		j := []history.Entry{entry(5, history.EntryAcquire, "r1", history.CodeOK, keys("k"), "a")}
		wantFail(t, Fencing(nil, map[string][]history.Entry{"n1": j}), "without a token")
	})
}

// Promise 3(b): an acquire that starts after another returned gets a
// higher token.
func TestFencingAcquireOrder(t *testing.T) {
	t.Run("increasing", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.acquire(2, "b", 5, 20, ok, 4, 100) // concurrent with a: any order
		b.acquire(3, "c", 30, 40, ok, 9, 100)
		r := b.acquire(4, "d", 5, 8, ok, 3, 100) // resolved: unknown return, so never "earlier" than c
		r.Resolved = true
		b.acquire(5, "e", 50, 60, ok, 2, 100).Key = "other"
		wantOK(t, Fencing(b.ops, nil))
	})
	t.Run("later acquire got a lower token", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.acquire(2, "b", 30, 40, ok, 9, 100)
		b.acquire(3, "c", 50, 60, ok, 7, 100)
		wantFail(t, Fencing(b.ops, nil), "acquire op 3 (client 3, token 7)", "after acquire op 2 (client 2, token 9)")
	})
	t.Run("later acquire got the same token", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.acquire(2, "b", 30, 40, ok, 5, 100)
		wantFail(t, Fencing(b.ops, nil), "acquire op 2 (client 2, token 5)")
	})
	t.Run("resolved acquire after a seen one got a lower token", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		r := b.acquire(2, "b", 30, 40, ok, 4, 100)
		r.Resolved = true
		wantFail(t, Fencing(b.ops, nil), "acquire op 2")
	})
	t.Run("ok acquire without token", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 0, 100)
		wantFail(t, Fencing(b.ops, nil), "without a token")
	})
}

// Promise 3(c): the fenced resource never accepts a stale holder's write.
func TestFencingWrites(t *testing.T) {
	t.Run("good writes and a justified rejection", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.write(1, "a", 20, 30, 5, true)
		b.write(1, "a", 31, 35, 5, true) // same token again: fine
		b.acquire(2, "b", 100, 110, ok, 9, 100)
		b.write(2, "b", 120, 130, 9, true)
		b.write(1, "a", 125, 140, 5, false) // stale, rejected
		r := Fencing(b.ops, nil)
		wantOK(t, r)
		if r.Stats["writes_accepted"] != 3 || r.Stats["writes_rejected"] != 1 {
			t.Fatalf("stats = %v", r.Stats)
		}
	})
	t.Run("concurrent writes may land in either order", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.acquire(2, "b", 100, 110, ok, 9, 100)
		b.write(2, "b", 120, 130, 9, true)
		b.write(1, "a", 115, 125, 5, true) // overlaps b's write: may have landed first
		wantOK(t, Fencing(b.ops, nil))
	})
	t.Run("stale write accepted", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.acquire(2, "b", 100, 110, ok, 9, 100)
		b.write(2, "b", 120, 130, 9, true)
		b.write(1, "a", 140, 150, 5, true)
		wantFail(t, Fencing(b.ops, nil), "accepted stale write op 4 (client 1, token 5)")
	})
	t.Run("accepted write with a token the client was never granted", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.write(1, "a", 20, 30, 6, true)
		wantFail(t, Fencing(b.ops, nil), "never granted token 6")
	})
	t.Run("accepted write with another client's token", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.write(2, "b", 20, 30, 5, true)
		wantFail(t, Fencing(b.ops, nil), "never granted token 5")
	})
	t.Run("accepted write under the wrong owner", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.write(1, "x", 20, 30, 5, true)
		wantFail(t, Fencing(b.ops, nil), "never granted token 5")
	})
	t.Run("rejection without a higher token: the resource is broken", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.write(1, "a", 20, 30, 5, false)
		wantFail(t, Fencing(b.ops, nil), "fenced resource is broken")
	})
	t.Run("rejection justified by an unknown write", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.acquire(2, "b", 100, 110, ok, 9, 100)
		w := b.write(2, "b", 120, 130, 9, true)
		w.Outcome = unknown
		b.write(1, "a", 125, 140, 5, false)
		wantOK(t, Fencing(b.ops, nil))
	})
}
