package checker

import (
	"testing"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// sem marks an op as a semaphore op of limit 2 with slots.
func sem(op *history.Op, slots ...uint32) *history.Op {
	op.Mode, op.Limit, op.Slots = history.ModeSemaphore, 2, slots
	return op
}

func mode(op *history.Op, m string) *history.Op {
	op.Mode = m
	return op
}

// The modes checker: a semaphore never has more permits held than its
// limit by the clients' deadlines, nor one slot twice; a writer never
// overlaps another holder of a read-write key; accepted writes come from
// current holders; a rejection needs a conflicting higher token. Each
// case that breaks a promise must be caught.
func TestModes(t *testing.T) {
	t.Run("two permits of two, then a third after one ends", func(t *testing.T) {
		var b h
		sem(b.acquire(1, "a", 0, 10, ok, 5, 1000), 0)
		sem(b.acquire(2, "b", 0, 12, ok, 6, 1000), 1)
		mode(b.release(1, "a", 50, 60, ok, true, 5), history.ModeSemaphore)
		sem(b.acquire(3, "c", 40, 70, ok, 9, 1000), 0) // returned after a's release was invoked
		wantOK(t, Modes(b.ops))
	})
	t.Run("three holders of a semaphore of two", func(t *testing.T) {
		var b h
		sem(b.acquire(1, "a", 0, 10, ok, 5, 1000), 0)
		sem(b.acquire(2, "b", 0, 12, ok, 6, 1000), 1)
		sem(b.acquire(3, "c", 0, 14, ok, 7, 1000), 2)
		wantFail(t, Modes(b.ops), "3 permits held at once", "limit 2")
	})
	t.Run("one slot held twice", func(t *testing.T) {
		var b h
		sem(b.acquire(1, "a", 0, 10, ok, 5, 1000), 0)
		sem(b.acquire(2, "b", 0, 12, ok, 6, 1000), 0)
		wantFail(t, Modes(b.ops), "slot 0 held by")
	})
	t.Run("readers together, the writer after them", func(t *testing.T) {
		var b h
		mode(b.acquire(1, "r1", 0, 10, ok, 5, 100), history.ModeShared) // deadline 90
		mode(b.acquire(2, "r2", 0, 12, ok, 6, 1000), history.ModeShared)
		mode(b.release(2, "r2", 50, 60, ok, true, 6), history.ModeShared)
		mode(b.acquire(3, "w", 40, 95, ok, 9, 1000), history.ModeExclusive)
		wantOK(t, Modes(b.ops))
	})
	t.Run("a writer beside a reader", func(t *testing.T) {
		var b h
		mode(b.acquire(1, "r1", 0, 10, ok, 5, 1000), history.ModeShared)
		mode(b.acquire(2, "w", 20, 30, ok, 9, 1000), history.ModeExclusive)
		wantFail(t, Modes(b.ops), "held it at the same time")
	})
	t.Run("a stale reader's write after the writer's", func(t *testing.T) {
		var b h
		mode(b.acquire(1, "r1", 0, 10, ok, 5, 100), history.ModeShared)
		mode(b.acquire(2, "w", 95, 100, ok, 9, 1000), history.ModeExclusive)
		mode(b.write(2, "w", 110, 111, 9, true), history.ModeExclusive)
		mode(b.write(1, "r1", 120, 121, 5, true), history.ModeShared) // the resource should have refused it
		wantFail(t, Modes(b.ops), "accepted stale write op")
	})
	t.Run("readers write in any token order; a stale slot is refused", func(t *testing.T) {
		var b h
		mode(b.acquire(1, "r1", 0, 10, ok, 5, 1000), history.ModeShared)
		mode(b.acquire(2, "r2", 0, 12, ok, 6, 1000), history.ModeShared)
		mode(b.write(2, "r2", 20, 21, 6, true), history.ModeShared)
		mode(b.write(1, "r1", 30, 31, 5, true), history.ModeShared)
		s1 := sem(b.acquire(3, "s1", 0, 10, ok, 7, 100), 0)
		s1.Key = "s"
		s2 := sem(b.acquire(4, "s2", 95, 100, ok, 11, 1000), 0)
		s2.Key = "s"
		sem(b.write(4, "s2", 110, 111, 11, true), 0).Key = "s"
		sem(b.write(3, "s1", 120, 121, 7, false), 0).Key = "s"
		wantOK(t, Modes(b.ops))
	})
	t.Run("a write under a token never granted", func(t *testing.T) {
		var b h
		sem(b.acquire(1, "a", 0, 10, ok, 5, 1000), 0)
		sem(b.write(1, "a", 20, 21, 5, true), 1) // slot 1 is not a's
		wantFail(t, Modes(b.ops), "not granted to that client")
	})
	t.Run("a rejection without a conflicting higher token", func(t *testing.T) {
		var b h
		sem(b.acquire(1, "a", 0, 10, ok, 5, 1000), 0)
		sem(b.acquire(2, "b", 0, 12, ok, 6, 1000), 1)
		sem(b.write(2, "b", 20, 21, 6, true), 1)
		sem(b.write(1, "a", 30, 31, 5, false), 0) // other slot: the resource had no reason
		wantFail(t, Modes(b.ops), "the fenced resource is broken")
	})
	t.Run("plain keys are not the modes checker's, nor mode keys the others'", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 1000).Key = "plain"
		b.acquire(2, "b", 0, 12, ok, 6, 1000).Key = "plain" // overlap: mutual-exclusion's to catch
		sem(b.acquire(3, "c", 0, 10, ok, 7, 1000), 0)
		sem(b.acquire(4, "d", 0, 12, ok, 8, 1000), 1)
		wantOK(t, Modes(b.ops))
		wantFail(t, MutualExclusion(PlainOps(b.ops)), "held it at the same time")
		wantOK(t, MutualExclusion(PlainOps(b.ops[2:])))
	})
}

// Journal tokens on a key with modes may repeat within one entry (readers
// granted together), never across entries.
func TestFencingJournalWithModes(t *testing.T) {
	var b h
	mode(b.acquire(1, "r1", 0, 10, ok, 5, 1000), history.ModeShared)
	e := entry(5, history.EntryRelease, "w", "ok", keys("k"), "w")
	e.Events = []history.Event{{RequestID: "r1", Code: "ok", Keys: keys("k"), Owner: "r1", Tokens: []uint64{5}},
		{RequestID: "r2", Code: "ok", Keys: keys("k"), Owner: "r2", Tokens: []uint64{5}}}
	journals := map[string][]history.Entry{"n1": {e}}
	wantOK(t, Fencing(b.ops, journals))
	again := entry(6, history.EntryAcquire, "r3", "ok", keys("k"), "r3", 5)
	journals["n1"] = append(journals["n1"], again)
	wantFail(t, Fencing(b.ops, journals), "is not above token 5")
	wantFail(t, Fencing(nil, map[string][]history.Entry{"n1": {e}}), "is not above token 5") // a plain key: strict
}
