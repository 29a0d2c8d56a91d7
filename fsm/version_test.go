package fsm

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Version 2 commands are encoded as version 2, round-trip every new field,
// and a set_version above what this build supports is refused at decoding,
// naming both versions (a node meeting it stops instead of applying it).
func TestVersion2Encoding(t *testing.T) {
	for _, c := range []Command{
		{Op: OpAcquire, Keys: []string{"a"}, Owner: "o", Wait: time.Second, RequestID: "r", Attempt: 77},
		{Op: OpAbandon, RequestID: "r", Attempt: 1<<63 + 5},
		{Op: OpSetVersion, ClusterVersion: Version2},
		{Op: OpCancelWait, RequestID: "r", Keys: []string{"tenant-a/"}},
	} {
		b := c.Encode(nil)
		if b[0] != 2 {
			t.Fatalf("%s: encoded as version %d, want 2", c.Op, b[0])
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		if got.Attempt != c.Attempt || got.ClusterVersion != c.ClusterVersion || got.Op != c.Op || got.RequestID != c.RequestID {
			t.Fatalf("round trip: got %+v, want %+v", got, c)
		}
	}
	b := (&Command{Op: OpSetVersion, ClusterVersion: SupportedVersion + 1}).Encode(nil)
	_, err := Decode(b)
	if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "version 3") || !strings.Contains(err.Error(), "up to 2") {
		t.Fatalf("set_version 3: err = %v", err)
	}
}

// The cluster version only moves up, through set_version, and gates every
// version 2 command: before it, such a command is refused identically on
// every replica and changes nothing.
func TestClusterVersionGates(t *testing.T) {
	h := newHarness(t)
	if v := h.tab.Version(); v != Version1 {
		t.Fatalf("a new table is at version %d, want 1", v)
	}
	r := h.apply(Command{Op: OpAcquire, Keys: []string{"a"}, Owner: "o", RequestID: "r1", Attempt: 9})
	h.wantCode(r, CodeInvalid)
	if !strings.Contains(r.Msg, "needs cluster version 2") || !strings.Contains(r.Msg, "at version 1") {
		t.Fatalf("refusal message %q", r.Msg)
	}
	if _, held := h.tab.Get("a"); held {
		t.Fatal("a refused command took a lock")
	}
	if _, ok := h.tab.Outcome("r1"); ok {
		t.Fatal("a refused command was remembered")
	}
	h.wantCode(h.apply(Command{Op: OpSetVersion, ClusterVersion: Version2}), CodeOK)
	h.wantCode(h.apply(Command{Op: OpSetVersion, ClusterVersion: Version1}), CodeOK)
	if v := h.tab.Version(); v != Version2 {
		t.Fatalf("version after set_version 2 then 1 = %d, want 2 (it never goes down)", v)
	}
	h.wantCode(h.apply(Command{Op: OpAcquire, Keys: []string{"a"}, Owner: "o", RequestID: "r1", Attempt: 9}), CodeOK)
	// The version survives a snapshot, and a version 2 table writes version 2
	// snapshots.
	snap := h.tab.AppendSnapshot(nil)
	if snap[4] != 2 {
		t.Fatalf("snapshot version byte %d, want 2", snap[4])
	}
	h.snapshotRoundTrip()
	if v := h.tab.Version(); v != Version2 {
		t.Fatalf("version after restore = %d", v)
	}
}

// A version 1 table writes version 1 snapshots (so version 1 nodes can
// install them during a rolling upgrade), and a snapshot of a newer version
// is refused naming both versions.
func TestSnapshotVersions(t *testing.T) {
	h := newHarness(t)
	h.acquire("o", "a")
	snap := h.tab.AppendSnapshot(nil)
	if snap[4] != 1 {
		t.Fatalf("a version 1 table wrote a version %d snapshot", snap[4])
	}
	snap[4] = byte(SupportedVersion + 1)
	_, err := Restore(DefaultConfig(), snap)
	if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("restore of a version 3 snapshot: err = %v", err)
	}
}

func newV2Harness(t *testing.T) *harness {
	h := newHarness(t)
	h.wantCode(h.apply(Command{Op: OpSetVersion, ClusterVersion: Version2}), CodeOK)
	return h
}

func (h *harness) acquireAttempt(rid, owner string, attempt uint64, wait time.Duration, keys ...string) *Result {
	h.t.Helper()
	return h.apply(Command{Op: OpAcquire, Keys: keys, Owner: owner, Wait: wait, RequestID: rid, Attempt: attempt})
}

func (h *harness) abandon(rid string, attempt uint64) *Result {
	h.t.Helper()
	return h.apply(Command{Op: OpAbandon, RequestID: rid, Attempt: attempt})
}

// DESIGN.md section 8 (7): a waiting acquire whose caller is gone is
// withdrawn, or released if it was granted meanwhile; no key is held by
// nobody.
func TestAbandon(t *testing.T) {
	t.Run("a queued waiter is withdrawn", func(t *testing.T) {
		h := newV2Harness(t)
		h.acquire("holder", "k")
		h.wantCode(h.acquireAttempt("w", "w1", 1, time.Minute, "k"), CodePending)
		r := h.abandon("w", 1)
		h.wantCode(r, CodeCancelled)
		if len(r.Events) != 1 || r.Events[0].RequestID != "w" || r.Events[0].Code != CodeCancelled {
			t.Fatalf("events %+v, want the waiter's cancellation", r.Events)
		}
		h.release("holder", "k")
		if _, held := h.tab.Get("k"); held {
			t.Fatal("k is held after its holder released it: the abandoned waiter got it")
		}
	})
	t.Run("a grant made meanwhile is released", func(t *testing.T) {
		h := newV2Harness(t)
		h.acquire("holder", "k")
		h.wantCode(h.acquireAttempt("w", "w1", 1, time.Minute, "k"), CodePending)
		h.wantCode(h.apply(Command{Op: OpAcquire, Keys: []string{"k"}, Owner: "w2", Wait: time.Minute, RequestID: "next"}), CodePending)
		h.release("holder", "k") // hands k to w1, whose caller is gone
		h.wantHolder("k", "w1")
		r := h.abandon("w", 1)
		h.wantCode(r, CodeCancelled)
		if r.Count != 1 {
			t.Fatalf("released %d keys, want 1", r.Count)
		}
		h.wantHolder("k", "w2") // and the next waiter moves up
		if ev := h.event(r, "next"); ev.Code != CodeOK {
			t.Fatalf("next waiter: %s", ev.Code)
		}
		if out, _ := h.tab.Outcome("w"); out.Code != CodeCancelled || len(out.Tokens) != 0 {
			t.Fatalf("outcome after abandon = %+v, want cancelled without tokens", out)
		}
		// A late retry of the abandoned id learns it holds nothing.
		h.wantCode(h.acquireAttempt("w", "w1", 2, time.Minute, "k"), CodeCancelled)
	})
	t.Run("keys held before, re-entrantly, stay", func(t *testing.T) {
		h := newV2Harness(t)
		h.acquire("o", "a")
		h.wantCode(h.acquireAttempt("both", "o", 1, time.Minute, "a", "b"), CodeOK)
		r := h.abandon("both", 1)
		if r.Count != 1 {
			t.Fatalf("released %d keys, want 1 (b only)", r.Count)
		}
		h.wantHolder("a", "o")
		if _, held := h.tab.Get("b"); held {
			t.Fatal("b, taken by the abandoned grant, is still held")
		}
	})
	t.Run("a newer holder is never touched", func(t *testing.T) {
		h := newV2Harness(t)
		h.wantCode(h.acquireAttempt("g", "o", 1, 0, "k"), CodeOK)
		h.release("o", "k")
		h.acquire("o", "k") // the same owner, a new grant with a new token
		if r := h.abandon("g", 1); r.Count != 0 {
			t.Fatalf("abandon released %d keys of a newer grant", r.Count)
		}
		h.wantHolder("k", "o")
	})
	t.Run("a grant already ended keeps its outcome", func(t *testing.T) {
		h := newV2Harness(t)
		h.wantCode(h.acquireAttempt("used", "o", 1, 0, "k"), CodeOK)
		h.release("o", "k") // its holder used it and gave it back
		if r := h.abandon("used", 1); !r.Duplicate || r.Code != CodeOK {
			t.Fatalf("abandon of an ended grant = %+v, want its ok outcome unchanged", r)
		}
		if out, _ := h.tab.Outcome("used"); out.Code != CodeOK {
			t.Fatalf("outcome %s, want ok", out.Code)
		}
	})
	t.Run("another attempt took the request over", func(t *testing.T) {
		h := newV2Harness(t)
		h.acquire("holder", "k")
		h.wantCode(h.acquireAttempt("w", "w1", 1, time.Minute, "k"), CodePending)
		h.wantCode(h.acquireAttempt("w", "w1", 2, time.Minute, "k"), CodePending) // the caller retried elsewhere
		r := h.abandon("w", 1)                                                    // the first node notices its caller left
		if !r.Duplicate || r.Code != CodePending {
			t.Fatalf("abandon of a superseded attempt = %+v, want the pending outcome unchanged", r)
		}
		h.release("holder", "k")
		h.wantHolder("k", "w1")
		h.wantCode(h.abandon("w", 2), CodeCancelled) // now its last attempt leaves too
		if _, held := h.tab.Get("k"); held {
			t.Fatal("k still held after every attempt left")
		}
	})
	t.Run("a late copy of an earlier try does not take over", func(t *testing.T) {
		h := newV2Harness(t)
		first, second, late := Attempt(1, 1, 1), Attempt(2, 2, 1), Attempt(1, 1, 2)
		h.wantCode(h.acquireAttempt("r", "o", first, 0, "k"), CodeOK)  // the answer is lost
		h.wantCode(h.acquireAttempt("r", "o", second, 0, "k"), CodeOK) // the caller's second try gets it
		h.wantCode(h.acquireAttempt("r", "o", late, 0, "k"), CodeOK)   // a node resends the first try late
		if r := h.abandon("r", late); !r.Duplicate {
			t.Fatalf("the late copy's abandon = %+v, want nothing changed", r)
		}
		h.wantHolder("k", "o") // the caller's grant stays
		h.wantCode(h.abandon("r", second), CodeCancelled)
	})
	t.Run("an abandon that overtakes its acquire leaves a tombstone", func(t *testing.T) {
		h := newV2Harness(t)
		h.wantCode(h.abandon("early", 1), CodeCancelled)
		h.wantCode(h.acquireAttempt("early", "o", 1, 0, "k"), CodeCancelled)
		if _, held := h.tab.Get("k"); held {
			t.Fatal("the acquire arrived after its abandon and took the key")
		}
	})
	t.Run("a failed acquire stays as it was", func(t *testing.T) {
		h := newV2Harness(t)
		h.acquire("holder", "k")
		h.wantCode(h.acquireAttempt("busy", "o", 1, 0, "k"), CodeBusy)
		r := h.abandon("busy", 1)
		if !r.Duplicate || r.Code != CodeBusy {
			t.Fatalf("abandon of a busy acquire = %+v", r)
		}
		h.wantHolder("k", "holder")
	})
	t.Run("attempt and id are required", func(t *testing.T) {
		h := newV2Harness(t)
		h.wantCode(h.abandon("x", 0), CodeInvalid)
		h.wantCode(h.abandon("", 1), CodeInvalid)
	})
}

// A CancelWait limited to key prefixes (a restricted token's) is decided on
// the state it applies to: it withdraws only requests within the prefixes,
// says denied for others, and leaves no tombstone for ids it does not know.
func TestCancelWithinPrefixes(t *testing.T) {
	h := newV2Harness(t)
	h.acquire("holder", "b/1", "a/1")
	h.wantCode(h.acquireWait("tb", "tenant-b", 0, time.Minute, "b/1"), CodePending)
	h.wantCode(h.acquireWait("ta", "tenant-a", 0, time.Minute, "a/1"), CodePending)
	cancel := func(rid string) *Result {
		return h.apply(Command{Op: OpCancelWait, RequestID: rid, Keys: []string{"a/"}})
	}
	r := cancel("tb")
	h.wantCode(r, CodeDenied)
	if r.Key != "b/1" {
		t.Fatalf("denied names key %q", r.Key)
	}
	if out, _ := h.tab.Outcome("tb"); out.Code != CodePending {
		t.Fatalf("tb after a denied cancel: %s", out.Code)
	}
	h.wantCode(cancel("ta"), CodeCancelled)
	h.wantCode(cancel("unknown"), CodeUnknown)
	if _, ok := h.tab.Outcome("unknown"); ok {
		t.Fatal("a scoped cancel left a tombstone for an unknown id")
	}
	h.wantCode(h.apply(Command{Op: OpCancelWait, RequestID: "x", Keys: []string{""}}), CodeInvalid)
}

// A node that restarts withdraws every waiter of its previous
// incarnation that still owns its request; grants stay (one may have
// reached its caller before the process stopped), and so do other
// incarnations' requests and requests taken over since.
func TestAbandonNode(t *testing.T) {
	h := newV2Harness(t)
	const old, other = uint64(7) << 32, uint64(9) << 32
	h.acquire("holder", "q")
	h.wantCode(h.acquireAttempt("g", "o1", old|1, 0, "k"), CodeOK)                // granted to a caller of the old process
	h.wantCode(h.acquireAttempt("w", "o2", old|2, time.Minute, "q"), CodePending) // waiting there
	h.wantCode(h.acquireAttempt("x", "o3", other|1, time.Minute, "q"), CodePending)
	h.wantCode(h.acquireAttempt("moved", "o4", old|3, time.Minute, "q"), CodePending)
	h.wantCode(h.acquireAttempt("moved", "o4", other|2, time.Minute, "q"), CodePending) // its caller retried elsewhere
	r := h.apply(Command{Op: OpAbandonNode, Attempt: old})
	if r.Code != CodeOK || r.Count != 1 {
		t.Fatalf("abandon_node = %+v, want ok withdrawing 1 waiter", r)
	}
	if out, _ := h.tab.Outcome("w"); out.Code != CodeCancelled {
		t.Fatalf("the old incarnation's waiter: %s", out.Code)
	}
	h.wantHolder("k", "o1") // a grant may have been delivered: it stays
	for _, rid := range []string{"x", "moved"} {
		if out, _ := h.tab.Outcome(rid); out.Code != CodePending {
			t.Fatalf("%s: %s, want still waiting", rid, out.Code)
		}
	}
	h.wantCode(h.apply(Command{Op: OpAbandonNode, Attempt: 5}), CodeInvalid) // no incarnation
}
