package fsm

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// The owner rules of DESIGN.md section 2: exclusive holds, re-entrancy for
// the same non-empty owner only, release only by the holder.
func TestOwnerRules(t *testing.T) {
	t.Run("second owner fails with the exact message", func(t *testing.T) {
		h := newHarness(t)
		h.wantCode(h.acquire("a", "k"), CodeOK)
		r := h.acquire("b", "k")
		h.wantCode(r, CodeBusy)
		if got, want := BusyMessage(r.Key), `Failed to acquire lock for key "k"`; got != want {
			t.Fatalf("message = %s, want %s", got, want)
		}
		h.wantHolder("k", "a")
	})
	t.Run("same owner acquires twice, token kept, deadline reset", func(t *testing.T) {
		h := newHarness(t)
		r1 := h.apply(Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "a", Expire: 10 * time.Second})
		h.wantCode(r1, CodeOK)
		h.advance(5 * time.Second)
		r2 := h.apply(Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "a", Expire: 10 * time.Second})
		h.wantCode(r2, CodeOK)
		if r2.Tokens[0] != r1.Tokens[0] {
			t.Fatalf("re-entrant token = %d, want %d", r2.Tokens[0], r1.Tokens[0])
		}
		if want := h.now + int64(10*time.Second); r2.Deadlines[0] != want {
			t.Fatalf("deadline = %d, want reset to %d", r2.Deadlines[0], want)
		}
		h.advance(7 * time.Second) // past the first deadline, before the second
		h.tick()
		h.wantHolder("k", "a")
	})
	t.Run("anonymous lock is never re-entrant", func(t *testing.T) {
		h := newHarness(t)
		h.wantCode(h.acquire("", "k"), CodeOK)
		h.wantCode(h.acquire("", "k"), CodeBusy)
	})
	t.Run("anonymous release frees an anonymous lock", func(t *testing.T) {
		h := newHarness(t)
		h.acquire("", "k")
		if r := h.release("", "k"); !r.Released {
			t.Fatalf("anonymous release = %+v, want released", r)
		}
		h.wantFree("k")
	})
	t.Run("anonymous release does not free an owned lock", func(t *testing.T) {
		h := newHarness(t)
		h.acquire("a", "k")
		if r := h.release("", "k"); r.Released {
			t.Fatal("anonymous release freed a lock owned by a")
		}
		h.wantHolder("k", "a")
	})
	t.Run("release by the wrong owner returns false and leaves the lock", func(t *testing.T) {
		h := newHarness(t)
		tok := h.wantHolderAfter(h.acquire("a", "k"), "k", "a")
		if r := h.release("b", "k"); r.Released || r.Code != CodeOK {
			t.Fatalf("wrong-owner release = %+v, want ok and not released", r)
		}
		if got := h.wantHolder("k", "a"); got != tok {
			t.Fatalf("token changed from %d to %d", tok, got)
		}
	})
	t.Run("release of several keys frees own, leaves others, says false", func(t *testing.T) {
		h := newHarness(t)
		h.acquire("a", "x")
		h.acquire("b", "y")
		if r := h.release("a", "x", "y"); r.Released {
			t.Fatal("released = true though y is held by b")
		}
		h.wantFree("x")
		h.wantHolder("y", "b")
	})
	t.Run("release of a free key returns false", func(t *testing.T) {
		h := newHarness(t)
		if r := h.release("a", "k"); r.Released {
			t.Fatal("released a key nobody held")
		}
	})
}

func (h *harness) wantHolderAfter(r *Result, key, owner string) uint64 {
	h.t.Helper()
	h.wantCode(r, CodeOK)
	return h.wantHolder(key, owner)
}

// All-or-nothing multi-key grants: no partial hold, ever.
func TestAllOrNothing(t *testing.T) {
	h := newHarness(t)
	h.acquire("a", "b")
	r := h.acquire("z", "a", "b", "c")
	h.wantCode(r, CodeBusy)
	if r.Key != "b" {
		t.Fatalf("busy key = %q, want b", r.Key)
	}
	h.wantFree("a")
	h.wantFree("c")

	r = h.acquire("z", "c", "a", "c", "d") // duplicates removed, sorted
	h.wantCode(r, CodeOK)
	if !slices.Equal(r.Keys, []string{"a", "c", "d"}) {
		t.Fatalf("keys = %q, want sorted and de-duplicated", r.Keys)
	}
	if r.Tokens[0] != r.Index || r.Tokens[1] != r.Index || r.Tokens[2] != r.Index {
		t.Fatalf("tokens = %v, want all %d (the entry's index)", r.Tokens, r.Index)
	}
}

// Fencing tokens are the index of the granting entry and strictly increase
// per key across releases, expiries, hand-offs and snapshot/restore.
func TestTokensStrictlyIncrease(t *testing.T) {
	h := newHarness(t)
	var last uint64
	check := func(r *Result) {
		t.Helper()
		h.wantCode(r, CodeOK)
		if r.Tokens[0] <= last {
			t.Fatalf("token %d after %d", r.Tokens[0], last)
		}
		last = r.Tokens[0]
	}
	check(h.acquire("a", "k"))
	h.release("a", "k")
	check(h.acquire("b", "k"))
	h.release("b", "k")
	check(h.apply(Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "c", Expire: time.Second}))
	h.advance(2 * time.Second)
	h.tick() // expires
	h.wantFree("k")
	h.snapshotRoundTrip()
	check(h.acquire("d", "k"))
	// Hand-off: the token of a waiter's grant is the releasing entry's index.
	h.wantCode(h.acquireWait("w", "e", 0, time.Minute, "k"), CodePending)
	h.snapshotRoundTrip()
	rel := h.release("d", "k")
	ev := h.event(rel, "w")
	if ev.Code != CodeOK || ev.Tokens[0] != rel.Index || ev.Tokens[0] <= last {
		t.Fatalf("hand-off event = %+v, want granted with token %d > %d", ev, rel.Index, last)
	}
}

// Waiters are served FIFO, granted inside the entry that frees their key.
func TestFIFOQueue(t *testing.T) {
	h := newHarness(t)
	h.acquire("holder", "k")
	for _, id := range []string{"w1", "w2", "w3"} {
		h.wantCode(h.acquireWait(id, id, 0, time.Minute, "k"), CodePending)
	}
	if l, _ := h.tab.Get("k"); l.Waiters != 3 {
		t.Fatalf("waiters = %d, want 3", l.Waiters)
	}
	// A newcomer may not barge in, even the instant the key is free.
	for i, id := range []string{"w1", "w2", "w3"} {
		prev := "holder"
		if i > 0 {
			prev = []string{"w1", "w2", "w3"}[i-1]
		}
		r := h.release(prev, "k")
		ev := h.event(r, id)
		h.wantCode(&ev, CodeOK)
		h.wantHolder("k", id)
	}
	h.wantCode(h.acquire("late", "k"), CodeBusy)
}

// No barging: a free key whose queue is not empty is not grantable to a
// newcomer; the first waiter is blocked on another key.
func TestNoBargingPastWaiters(t *testing.T) {
	h := newHarness(t)
	h.acquire("a", "A")
	h.wantCode(h.acquireWait("w", "w", 0, time.Minute, "A", "B"), CodePending)
	r := h.acquire("n", "B")
	h.wantCode(r, CodeBusy)
	h.release("a", "A")
	h.wantHolder("A", "w")
	h.wantHolder("B", "w")
}

// Waiters for {A,B} and {B,A} never deadlock: they are served in arrival
// order, each holding nothing until it holds everything.
func TestOppositeOrdersNeverDeadlock(t *testing.T) {
	h := newHarness(t)
	h.acquire("x", "A")
	h.acquire("y", "B")
	h.wantCode(h.acquireWait("ab", "p", 0, time.Minute, "A", "B"), CodePending)
	h.wantCode(h.acquireWait("ba", "q", 0, time.Minute, "B", "A"), CodePending)
	r := h.release("x", "A")
	if len(r.Events) != 0 {
		t.Fatalf("events after freeing A only: %+v (nothing may be granted partially)", r.Events)
	}
	h.wantFree("A")
	r = h.release("y", "B")
	h.wantCode(ptr(h.event(r, "ab")), CodeOK)
	h.wantHolder("A", "p")
	h.wantHolder("B", "p")
	r = h.release("p", "A", "B")
	h.wantCode(ptr(h.event(r, "ba")), CodeOK)
	h.wantHolder("A", "q")
}

func ptr[T any](v T) *T { return &v }

// A waiter that times out leaves the queue holding nothing, also a
// multi-key waiter whose other key was free.
func TestWaitTimeoutHoldsNothing(t *testing.T) {
	h := newHarness(t)
	h.acquire("x", "B")
	h.wantCode(h.acquireWait("w", "w", 0, 2*time.Second, "A", "B"), CodePending)
	h.advance(time.Second)
	if r := h.tick(); len(r.Events) != 0 {
		t.Fatalf("events before the wait deadline: %+v", r.Events)
	}
	h.advance(time.Second)
	r := h.tick()
	ev := h.event(r, "w")
	h.wantCode(&ev, CodeTimedOut)
	h.wantFree("A")
	h.wantHolder("B", "x")
	if l, _ := h.tab.Get("B"); l.Waiters != 0 {
		t.Fatalf("waiters on B = %d after timeout", l.Waiters)
	}
	if out, _ := h.tab.Outcome("w"); out.Code != CodeTimedOut {
		t.Fatalf("outcome = %s, want timed_out", out.Code)
	}
	// Freeing B now grants nothing to the departed waiter.
	if r := h.release("x", "B"); len(r.Events) != 0 {
		t.Fatalf("events: %+v", r.Events)
	}
}

// A timed-out waiter lets the one behind it move up.
func TestTimeoutOfHeadUnblocksNext(t *testing.T) {
	h := newHarness(t)
	h.acquire("x", "B")
	h.wantCode(h.acquireWait("w1", "p", 0, time.Second, "A", "B"), CodePending)
	h.wantCode(h.acquireWait("w2", "q", 0, time.Minute, "A"), CodePending)
	h.advance(time.Second)
	r := h.tick()
	h.wantCode(ptr(h.event(r, "w1")), CodeTimedOut)
	h.wantCode(ptr(h.event(r, "w2")), CodeOK)
	h.wantHolder("A", "q")
}

// Locks expire by cluster time only, never earlier than their deadline,
// and cluster time never runs backwards.
func TestExpiryByClusterTime(t *testing.T) {
	h := newHarness(t)
	h.apply(Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "a", Expire: 10 * time.Second})
	h.advance(10*time.Second - 1)
	h.tick()
	h.wantHolder("k", "a")
	// A command stamped in the past does not move time backwards.
	before := h.tab.Now()
	h.now -= int64(time.Hour)
	h.tick()
	if h.tab.Now() != before {
		t.Fatalf("time moved from %d to %d", before, h.tab.Now())
	}
	h.now = before + 1
	h.tick()
	h.wantFree("k")
}

// An expiry hands the key to the next waiter in the same entry.
func TestExpiryHandsOff(t *testing.T) {
	h := newHarness(t)
	h.apply(Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "a", Expire: time.Second})
	h.wantCode(h.acquireWait("w", "b", 0, time.Minute, "k"), CodePending)
	h.advance(time.Second)
	r := h.tick()
	ev := h.event(r, "w")
	h.wantCode(&ev, CodeOK)
	if ev.Tokens[0] != r.Index {
		t.Fatalf("token = %d, want %d", ev.Tokens[0], r.Index)
	}
	h.wantHolder("k", "b")
}

// Same-owner waiters are re-entrant: when one of them is granted, the next
// one in line with the same owner is granted in the same entry.
func TestReentrantWaiters(t *testing.T) {
	h := newHarness(t)
	h.acquire("y", "A")
	h.wantCode(h.acquireWait("x1", "x", 0, time.Minute, "A"), CodePending)
	h.wantCode(h.acquireWait("x2", "x", 0, time.Minute, "A"), CodePending)
	r := h.release("y", "A")
	h.wantCode(ptr(h.event(r, "x1")), CodeOK)
	h.wantCode(ptr(h.event(r, "x2")), CodeOK)
	// A waiter whose key is held by its own owner waits only for the others.
	h.acquire("z", "B")
	h.wantCode(h.acquireWait("x3", "x", 0, time.Minute, "A", "B"), CodePending)
	r = h.release("z", "B")
	h.wantCode(ptr(h.event(r, "x3")), CodeOK)
	h.wantHolder("B", "x")
}

// Token release frees only while the token is current, all or nothing.
func TestTokenRelease(t *testing.T) {
	h := newHarness(t)
	r := h.acquire("a", "k")
	old := r.Tokens[0]
	h.release("a", "k")
	r = h.acquire("a", "k")
	stale := h.apply(Command{Op: OpRelease, Keys: []string{"k"}, Owner: "a", HasToken: true, Token: old})
	h.wantCode(stale, CodeNotHeld)
	if stale.Released || stale.Key != "k" {
		t.Fatalf("stale token release = %+v", stale)
	}
	h.wantHolder("k", "a")
	ok := h.apply(Command{Op: OpRelease, Keys: []string{"k"}, Owner: "a", HasToken: true, Token: r.Tokens[0]})
	h.wantCode(ok, CodeOK)
	if !ok.Released {
		t.Fatal("current token release did not free")
	}
	h.wantFree("k")

	// Multi-key: one stale key means nothing is freed.
	r1 := h.acquire("a", "x")
	r2 := h.acquire("a", "y")
	bad := h.apply(Command{Op: OpRelease, Keys: []string{"x", "y"}, Owner: "a", HasToken: true, Token: r2.Tokens[0]})
	h.wantCode(bad, CodeNotHeld)
	h.wantHolder("x", "a")
	h.wantHolder("y", "a")
	_ = r1
}

// ReleaseAll frees every lock of one owner and no other; the empty owner
// frees every anonymous lock.
func TestReleaseAll(t *testing.T) {
	h := newHarness(t)
	h.acquire("a", "1", "2")
	h.acquire("a", "3")
	h.acquire("b", "4")
	h.acquire("", "5")
	h.acquire("", "6")
	r := h.apply(Command{Op: OpReleaseAll, Owner: "a"})
	if r.Count != 3 {
		t.Fatalf("count = %d, want 3", r.Count)
	}
	h.wantHolder("4", "b")
	h.wantHolder("5", "")
	r = h.apply(Command{Op: OpReleaseAll, Owner: ""})
	if r.Count != 2 {
		t.Fatalf("anonymous count = %d, want 2", r.Count)
	}
	h.wantHolder("4", "b")
	if s := h.tab.Stats(); s.Locks != 1 {
		t.Fatalf("locks = %d, want 1", s.Locks)
	}
	// Limited to key prefixes (a caller allowed only some prefixes).
	h.acquire("c", "t1/a", "t1/b", "t2/a", "t3/a")
	r = h.apply(Command{Op: OpReleaseAll, Owner: "c", Keys: []string{"t1/", "t3/"}})
	if r.Count != 3 {
		t.Fatalf("prefix count = %d, want 3", r.Count)
	}
	h.wantHolder("t2/a", "c")
}

// Refresh extends only locks still held by this owner, all or nothing.
func TestRefresh(t *testing.T) {
	h := newHarness(t)
	h.apply(Command{Op: OpAcquire, Keys: []string{"a", "b"}, Owner: "o", Expire: 10 * time.Second})
	h.advance(8 * time.Second)
	r := h.apply(Command{Op: OpRefresh, Keys: []string{"a", "b"}, Owner: "o"})
	h.wantCode(r, CodeOK)
	if want := h.now + int64(10*time.Second); r.Deadlines[0] != want {
		t.Fatalf("deadline = %d, want %d (own expire)", r.Deadlines[0], want)
	}
	h.advance(8 * time.Second)
	h.tick()
	h.wantHolder("a", "o")
	r = h.apply(Command{Op: OpRefresh, Keys: []string{"a"}, Owner: "o", Expire: 30 * time.Second})
	if want := h.now + int64(30*time.Second); r.Deadlines[0] != want {
		t.Fatalf("deadline = %d, want %d", r.Deadlines[0], want)
	}
	h.release("o", "b")
	nh := h.apply(Command{Op: OpRefresh, Keys: []string{"a", "b"}, Owner: "o", Expire: time.Hour})
	h.wantCode(nh, CodeNotHeld)
	if nh.Key != "b" {
		t.Fatalf("not-held key = %q, want b", nh.Key)
	}
	if l, _ := h.tab.Get("a"); l.Deadline != r.Deadlines[0] {
		t.Fatal("a failed refresh changed a's deadline")
	}
	h.wantCode(h.apply(Command{Op: OpRefresh, Keys: []string{"a"}, Owner: "other"}), CodeNotHeld)
}

// A repeated request id returns the first result and changes nothing;
// reusing it for a different request is refused.
func TestRequestIDDeduplication(t *testing.T) {
	h := newHarness(t)
	acq := Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "a", RequestID: "r1"}
	first := h.apply(acq)
	h.release("a", "k")
	h.acquire("b", "k")
	again := h.apply(acq)
	if !again.Duplicate || again.Code != CodeOK || again.Tokens[0] != first.Tokens[0] {
		t.Fatalf("retry = %+v, want the first result %+v", again, first)
	}
	h.wantHolder("k", "b")

	rel := Command{Op: OpRelease, Keys: []string{"k"}, Owner: "b", RequestID: "r2"}
	if r := h.apply(rel); !r.Released {
		t.Fatal("release failed")
	}
	h.acquire("b", "k")
	if r := h.apply(rel); !r.Duplicate || !r.Released {
		t.Fatalf("retried release = %+v", r)
	}
	h.wantHolder("k", "b") // the retry did not free the new hold

	reuse := h.apply(Command{Op: OpAcquire, Keys: []string{"other"}, Owner: "a", RequestID: "r1"})
	h.wantCode(reuse, CodeInvalid)
	if !strings.Contains(reuse.Msg, "request_id") {
		t.Fatalf("msg = %q, want it to name request_id", reuse.Msg)
	}
	h.wantFree("other")
}

// A busy result is remembered too: the retry does not acquire a key that
// became free meanwhile.
func TestRetryOfBusyStaysBusy(t *testing.T) {
	h := newHarness(t)
	h.acquire("a", "k")
	c := Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "b", RequestID: "r"}
	h.wantCode(h.apply(c), CodeBusy)
	h.release("a", "k")
	h.wantCode(h.apply(c), CodeBusy)
	h.wantFree("k")
}

// A retry of a waiting Acquire reports it still pending; after the grant,
// the grant.
func TestRetryOfPendingAcquire(t *testing.T) {
	h := newHarness(t)
	h.acquire("a", "k")
	c := Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "b", Wait: time.Minute, RequestID: "r"}
	h.wantCode(h.apply(c), CodePending)
	h.wantCode(h.apply(c), CodePending)
	if l, _ := h.tab.Get("k"); l.Waiters != 1 {
		t.Fatalf("waiters = %d, want 1 (the retry must not queue twice)", l.Waiters)
	}
	h.release("a", "k")
	r := h.apply(c)
	h.wantCode(r, CodeOK)
	if !r.Duplicate {
		t.Fatal("retry after grant not marked duplicate")
	}
}

// Remembered request ids are forgotten after RequestTTL and beyond
// MaxRequests, oldest first; pending ones are kept while they wait.
func TestRequestMemoryIsBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRequests = 3
	cfg.RequestTTL = time.Minute
	h := newHarness(t)
	h.tab = New(cfg)
	h.acquire("a", "held")
	h.wantCode(h.acquireWait("pending", "b", 0, time.Hour, "held"), CodePending)
	for i := range 5 {
		h.apply(Command{Op: OpAcquire, Keys: []string{"k" + string(rune('0'+i))}, Owner: "a", RequestID: "r" + string(rune('0'+i))})
	}
	h.tick()
	if s := h.tab.Stats(); s.Requests != 4 { // 3 resolved + 1 pending
		t.Fatalf("remembered = %d, want 4", s.Requests)
	}
	if _, ok := h.tab.Outcome("r0"); ok {
		t.Fatal("oldest id still remembered past MaxRequests")
	}
	if _, ok := h.tab.Outcome("r4"); !ok {
		t.Fatal("newest id forgotten")
	}
	h.advance(2 * time.Minute)
	h.tick()
	if s := h.tab.Stats(); s.Requests != 1 {
		t.Fatalf("remembered = %d after TTL, want only the pending one", s.Requests)
	}
	if out, ok := h.tab.Outcome("pending"); !ok || out.Code != CodePending {
		t.Fatalf("pending outcome = %+v, %v", out, ok)
	}
}

// CancelWait withdraws a waiter and lets the next move up; on a granted
// request it reports the grant and changes nothing.
func TestCancelWait(t *testing.T) {
	h := newHarness(t)
	h.acquire("a", "A", "B")
	h.wantCode(h.acquireWait("w1", "p", 0, time.Minute, "A", "B"), CodePending)
	h.wantCode(h.acquireWait("w2", "q", 0, time.Minute, "A"), CodePending)
	h.release("a", "B")
	r := h.apply(Command{Op: OpCancelWait, RequestID: "w1"})
	h.wantCode(r, CodeCancelled)
	h.wantCode(ptr(h.event(r, "w1")), CodeCancelled)
	h.wantFree("B")
	r = h.release("a", "A")
	h.wantCode(ptr(h.event(r, "w2")), CodeOK)
	again := h.apply(Command{Op: OpCancelWait, RequestID: "w2"})
	h.wantCode(again, CodeOK)
	h.wantHolder("A", "q")
	// A cancel that overtakes its Acquire leaves a tombstone: the Acquire,
	// arriving later, is refused as cancelled and takes nothing.
	h.wantCode(h.apply(Command{Op: OpCancelWait, RequestID: "early"}), CodeCancelled)
	late := h.acquireWait("early", "z", 0, time.Minute, "free-key")
	h.wantCode(late, CodeCancelled)
	h.wantFree("free-key")
	h.snapshotRoundTrip()
	h.wantCode(h.acquireWait("early", "z", 0, time.Minute, "free-key"), CodeCancelled)
}

// ForceRelease frees keys whoever holds them and hands them on.
func TestForceRelease(t *testing.T) {
	h := newHarness(t)
	h.acquire("a", "x")
	h.acquire("b", "y")
	h.wantCode(h.acquireWait("w", "c", 0, time.Minute, "y"), CodePending)
	r := h.apply(Command{Op: OpForceRelease, Keys: []string{"x", "y", "z"}})
	if r.Count != 2 {
		t.Fatalf("count = %d, want 2", r.Count)
	}
	h.wantFree("x")
	h.wantHolder("y", "c")
}

// Limits: waiters per key, total waiters and locks are refused with
// CodeExhausted and change nothing.
func TestLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxWaitersPerKey = 2
	cfg.MaxWaiters = 3
	cfg.MaxLocks = 3
	h := newHarness(t)
	h.tab = New(cfg)
	h.acquire("a", "k", "j")
	h.wantCode(h.acquireWait("1", "b", 0, time.Minute, "k"), CodePending)
	h.wantCode(h.acquireWait("2", "b", 0, time.Minute, "k"), CodePending)
	h.wantCode(h.acquireWait("3", "b", 0, time.Minute, "k"), CodeExhausted)
	h.wantCode(h.acquireWait("4", "b", 0, time.Minute, "j"), CodePending)
	h.wantCode(h.acquireWait("5", "b", 0, time.Minute, "j"), CodeExhausted)
	if s := h.tab.Stats(); s.Waiters != 3 {
		t.Fatalf("waiters = %d", s.Waiters)
	}
	h.wantCode(h.acquire("c", "m"), CodeOK)
	h.wantCode(h.acquire("c", "n"), CodeExhausted)
	h.wantFree("n")
	// A refused request id is not remembered: a retry may succeed later.
	if _, ok := h.tab.Outcome("3"); ok {
		t.Fatal("exhausted request remembered")
	}
}

// Every invalid command is refused naming the field, and changes nothing.
func TestInvalidCommands(t *testing.T) {
	long := strings.Repeat("x", MaxKeyLen+1)
	many := make([]string, MaxKeys+1)
	for i := range many {
		many[i] = "k" + strings.Repeat("x", i)
	}
	cases := []struct {
		name  string
		c     Command
		field string
	}{
		{"no keys", Command{Op: OpAcquire}, "keys"},
		{"empty key", Command{Op: OpAcquire, Keys: []string{"a", ""}}, "keys[1]"},
		{"long key", Command{Op: OpAcquire, Keys: []string{long}}, "keys[0]"},
		{"NUL in key", Command{Op: OpAcquire, Keys: []string{"a\x00b"}}, "keys[0]"},
		{"bad UTF-8", Command{Op: OpAcquire, Keys: []string{"\xff"}}, "keys[0]"},
		{"too many keys", Command{Op: OpAcquire, Keys: many}, "keys"},
		{"long owner", Command{Op: OpAcquire, Keys: []string{"a"}, Owner: strings.Repeat("o", MaxOwnerLen+1)}, "owner_id"},
		{"negative expire", Command{Op: OpAcquire, Keys: []string{"a"}, Expire: -1}, "expire"},
		{"huge expire", Command{Op: OpAcquire, Keys: []string{"a"}, Expire: MaxExpire + 1}, "expire"},
		{"negative wait", Command{Op: OpAcquire, Keys: []string{"a"}, Wait: -1}, "wait_timeout"},
		{"wait without id", Command{Op: OpAcquire, Keys: []string{"a"}, Wait: time.Second}, "request_id"},
		{"long request id", Command{Op: OpRelease, Keys: []string{"a"}, RequestID: strings.Repeat("r", MaxRequestIDLen+1)}, "request_id"},
		{"empty prefix on release all", Command{Op: OpReleaseAll, Keys: []string{""}}, "keys[0]"},
		{"cancel without id", Command{Op: OpCancelWait}, "request_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.acquire("x", "held")
			h.wantCode(h.acquireWait("w", "y", 0, time.Minute, "held"), CodePending)
			before := h.stateBytes()
			tc.c.Time = h.now
			h.index++
			r := h.tab.Apply(h.index, &tc.c)
			h.wantCode(r, CodeInvalid)
			if !strings.HasPrefix(r.Msg, tc.field) {
				t.Fatalf("msg = %q, want it to start with %q", r.Msg, tc.field)
			}
			if after := h.stateBytes(); !bytes.Equal(before, after) {
				t.Fatal("an invalid command changed the state")
			}
		})
	}
}

// stateBytes is the snapshot without the last applied index, which every
// entry moves.
func (h *harness) stateBytes() []byte {
	idx := h.tab.index
	h.tab.index = 0
	defer func() { h.tab.index = idx }()
	return h.tab.AppendSnapshot(nil)
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	bad := DefaultConfig()
	bad.MaxRequests = 0
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "MaxRequests") {
		t.Fatalf("err = %v, want it to name MaxRequests", err)
	}
}

// The decoder rejects what it does not know, and round-trips what it does.
func TestEncoding(t *testing.T) {
	c := Command{Op: OpRelease, Time: 42, Keys: []string{"a", "b"}, Owner: "o", Expire: 3, Wait: 4, HasToken: true, Token: 9, RequestID: "r"}
	b := c.Encode(nil)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Op != c.Op || got.Time != c.Time || !slices.Equal(got.Keys, c.Keys) || got.Owner != c.Owner ||
		got.Expire != c.Expire || got.Wait != c.Wait || got.HasToken != c.HasToken || got.Token != c.Token || got.RequestID != c.RequestID {
		t.Fatalf("round trip: got %+v, want %+v", got, c)
	}
	StampTime(b, 77)
	if got, _ := Decode(b); got.Time != 77 {
		t.Fatalf("stamped time = %d", got.Time)
	}
	if b[0] != 1 {
		t.Fatalf("a command with no version 2 field is encoded as version %d, want 1", b[0])
	}
	v3 := slices.Clone(b)
	v3[0] = byte(SupportedVersion + 1)
	if _, err := Decode(v3); !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "version 3") || !strings.Contains(err.Error(), "up to 2") {
		t.Fatalf("version 3: err = %v, want ErrUnsupportedVersion naming both versions", err)
	}
	v2 := slices.Clone(b)
	v2[0] = 2
	if _, err := Decode(v2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a version 1 command with a version 2 byte: err = %v, want ErrCorrupt", err)
	}
	if _, err := Decode(append(slices.Clone(b), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: err = %v", err)
	}
	if _, err := Decode(b[:len(b)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: err = %v", err)
	}
}

// A snapshot restores everything: locks, queues, waiters' deadlines,
// remembered ids and time; the restored table behaves the same.
func TestSnapshotRestoresEverything(t *testing.T) {
	h := newHarness(t)
	h.apply(Command{Op: OpAcquire, Keys: []string{"a", "b"}, Owner: "o", Expire: 5 * time.Second, RequestID: "g"})
	h.wantCode(h.acquireWait("w1", "p", time.Second, 10*time.Second, "b", "c"), CodePending)
	h.wantCode(h.acquireWait("w2", "q", 0, 10*time.Second, "c"), CodePending)
	h.snapshotRoundTrip()
	if out, ok := h.tab.Outcome("g"); !ok || out.Code != CodeOK {
		t.Fatalf("outcome of g after restore = %+v %v", out, ok)
	}
	if h.tab.Now() != h.now {
		t.Fatalf("now = %d, want %d", h.tab.Now(), h.now)
	}
	h.advance(5 * time.Second)
	r := h.tick() // expires a,b; w1 gets b,c; w2 still waits behind w1 on c
	h.wantCode(ptr(h.event(r, "w1")), CodeOK)
	h.wantHolder("c", "p")
	h.advance(time.Second)
	r = h.tick() // w1's lock (1s) expires; w2 gets c
	h.wantCode(ptr(h.event(r, "w2")), CodeOK)

	if _, err := Restore(DefaultConfig(), []byte("RLSN\x01garbage!")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage snapshot: err = %v", err)
	}
}
