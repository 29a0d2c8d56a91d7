package fsm

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests of the shared and semaphore modes (DESIGN.md, "Modes"), one rule
// each.

// v2 returns a harness whose cluster is at version 2, where modes are
// allowed.
func v2(t *testing.T) *harness {
	h := newHarness(t)
	h.wantCode(h.apply(Command{Op: OpSetVersion, ClusterVersion: Version2}), CodeOK)
	return h
}

func shared(owner string, keys ...string) Command {
	return Command{Op: OpAcquire, Keys: keys, Owner: owner, Mode: ModeShared}
}

func exclusive(owner string, keys ...string) Command {
	return Command{Op: OpAcquire, Keys: keys, Owner: owner}
}

func sem(owner string, limit, permits uint32, keys ...string) Command {
	return Command{Op: OpAcquire, Keys: keys, Owner: owner, Mode: ModeSemaphore, Limit: limit, Permits: permits}
}

// waiting makes c a waiting Acquire with request id rid.
func waiting(c Command, rid string) Command {
	c.RequestID, c.Wait = rid, time.Minute
	return c
}

func (h *harness) holders(key string) []string {
	h.t.Helper()
	l, _ := h.tab.Get(key)
	if l.Mode == ModeExclusive && l.Token != 0 {
		return []string{"x:" + l.Owner}
	}
	var out []string
	for _, hi := range l.Holders {
		out = append(out, hi.Owner)
	}
	slices.Sort(out)
	return out
}

func (h *harness) wantHolders(key string, want ...string) {
	h.t.Helper()
	if got := h.holders(key); !slices.Equal(got, want) {
		h.t.Fatalf("holders of %q = %q, want %q", key, got, want)
	}
}

func (h *harness) checkInvariants() {
	h.t.Helper()
	if err := h.tab.checkInvariants(); err != nil {
		h.t.Fatal(err)
	}
}

// Modes are version 2: a version 1 cluster refuses them identically on
// every replica; exclusive requests keep their version 1 encoding byte for
// byte, and the mode fields round-trip.
func TestModesNeedVersion2(t *testing.T) {
	h := newHarness(t)
	r := h.apply(shared("o", "a"))
	h.wantCode(r, CodeInvalid)
	if !strings.Contains(r.Msg, "needs cluster version 2") {
		t.Fatalf("message %q", r.Msg)
	}
	h.wantFree("a")
	ex := exclusive("o", "a")
	if b := ex.Encode(nil); b[0] != 1 {
		t.Fatalf("an exclusive acquire encodes as version %d", b[0])
	}
	for _, c := range []Command{shared("o", "a"), sem("o", 5, 2, "a")} {
		b := c.Encode(nil)
		if b[0] != 2 {
			t.Fatalf("%s: version %d, want 2", c.Mode, b[0])
		}
		got, err := Decode(b)
		if err != nil || got.Mode != c.Mode || got.Permits != c.Permits || got.Limit != c.Limit {
			t.Fatalf("round trip of %+v: %+v, %v", c, got, err)
		}
	}
	sc := sem("o", 5, 2, "a")
	b := sc.Encode(nil)
	b[len(b)-3] = 9 // the mode byte
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "unknown mode 9") {
		t.Fatalf("unknown mode: %v", err)
	}
}

// Shared and semaphore holds need an owner, and each mode takes only its
// own fields, within their limits: refused with the field named, nothing
// changed.
func TestModeValidation(t *testing.T) {
	h := v2(t)
	for _, tc := range []struct {
		c     Command
		field string
	}{
		{shared("", "a"), "owner_id"},
		{sem("", 2, 1, "a"), "owner_id"},
		{sem("o", 0, 1, "a"), "limit"},
		{sem("o", MaxLimit+1, 1, "a"), "limit"},
		{sem("o", 2, 0, "a"), "permits"},
		{sem("o", 2, 3, "a"), "permits"},
		{Command{Op: OpAcquire, Keys: []string{"a"}, Owner: "o", Mode: ModeShared, Permits: 1}, "permits"},
		{Command{Op: OpAcquire, Keys: []string{"a"}, Owner: "o", Limit: 2}, "limit"},
		{Command{Op: OpRelease, Keys: []string{"a"}, Owner: "o", Mode: ModeShared}, "mode"},
	} {
		r := h.apply(tc.c)
		h.wantCode(r, CodeInvalid)
		if !strings.HasPrefix(r.Msg, tc.field+":") {
			t.Fatalf("%+v: message %q does not start with %q", tc.c, r.Msg, tc.field)
		}
	}
	h.wantFree("a")
}

// Many shared holders at once; an exclusive request waits for all of them,
// and its token is above every reader grant it excluded.
func TestSharedHoldersExcludeWriter(t *testing.T) {
	h := v2(t)
	r1 := h.apply(shared("r1", "a"))
	r2 := h.apply(shared("r2", "a"))
	h.wantCode(r1, CodeOK)
	h.wantCode(r2, CodeOK)
	h.wantHolders("a", "r1", "r2")
	h.wantCode(h.apply(exclusive("w", "a")), CodeBusy)
	h.wantCode(h.apply(waiting(exclusive("w", "a"), "w1")), CodePending)
	h.wantCode(h.release("r1", "a"), CodeOK)
	h.wantHolders("a", "r2") // the writer still waits for r2
	r := h.release("r2", "a")
	ev := h.event(r, "w1")
	h.wantCode(&ev, CodeOK)
	if ev.Tokens[0] <= r2.Tokens[0] || ev.Tokens[0] <= r1.Tokens[0] {
		t.Fatalf("writer token %d not above reader tokens %d, %d", ev.Tokens[0], r1.Tokens[0], r2.Tokens[0])
	}
	h.wantHolders("a", "x:w")
	h.wantCode(h.apply(shared("r3", "a")), CodeBusy) // readers wait for the writer too
	h.checkInvariants()
}

// A waiting writer is not starved by a stream of readers: new readers
// queue behind it. When the writer is done, the readers behind it are
// granted together, in one entry, sharing its index as their token (a
// read generation).
func TestWaitingWriterNotStarved(t *testing.T) {
	h := v2(t)
	h.wantCode(h.apply(shared("r1", "a")), CodeOK)
	h.wantCode(h.apply(waiting(exclusive("w", "a"), "w1")), CodePending)
	h.wantCode(h.apply(shared("r2", "a")), CodeBusy) // no barging past the writer
	h.wantCode(h.apply(waiting(shared("r2", "a"), "q2")), CodePending)
	h.wantCode(h.apply(waiting(shared("r3", "a"), "q3")), CodePending)
	r := h.release("r1", "a")
	w := h.event(r, "w1")
	h.wantCode(&w, CodeOK)
	r = h.release("w", "a")
	e2, e3 := h.event(r, "q2"), h.event(r, "q3")
	if e2.Code != CodeOK || e3.Code != CodeOK || e2.Tokens[0] != r.Index || e3.Tokens[0] != r.Index {
		t.Fatalf("readers after the writer: %s/%v and %s/%v, want both granted with token %d", e2.Code, e2.Tokens, e3.Code, e3.Tokens, r.Index)
	}
	h.wantHolders("a", "r2", "r3")
	h.checkInvariants()
}

// A semaphore admits holders up to its limit in permits; each hold gets
// the lowest free slot numbers; a full semaphore is busy; a freed slot is
// handed to the next waiter.
func TestSemaphoreLimitAndSlots(t *testing.T) {
	h := v2(t)
	a := h.apply(sem("a", 3, 1, "s"))
	b := h.apply(sem("b", 3, 2, "s"))
	if !slices.Equal(a.Slots, []uint32{0}) || !slices.Equal(b.Slots, []uint32{1, 2}) {
		t.Fatalf("slots %v and %v, want [0] and [1 2]", a.Slots, b.Slots)
	}
	h.wantCode(h.apply(sem("c", 3, 1, "s")), CodeBusy)
	h.wantCode(h.apply(waiting(sem("c", 3, 1, "s"), "c1")), CodePending)
	r := h.release("a", "s")
	c := h.event(r, "c1")
	if c.Code != CodeOK || !slices.Equal(c.Slots, []uint32{0}) || c.Tokens[0] != r.Index {
		t.Fatalf("hand-off: %s slots %v token %v, want slot 0 and token %d", c.Code, c.Slots, c.Tokens, r.Index)
	}
	l, _ := h.tab.Get("s")
	if l.Mode != ModeSemaphore || l.Limit != 3 || len(l.Holders) != 2 {
		t.Fatalf("Get: %+v", l)
	}
	h.checkInvariants()
}

// A waiting multi-permit request is not starved by single permits: a
// newcomer for one permit queues behind it even when one is free.
func TestMultiPermitWaiterNotStarved(t *testing.T) {
	h := v2(t)
	h.wantCode(h.apply(sem("a", 3, 1, "s")), CodeOK)
	h.wantCode(h.apply(sem("b", 3, 1, "s")), CodeOK)
	h.wantCode(h.apply(waiting(sem("big", 3, 2, "s"), "big")), CodePending)
	h.wantCode(h.apply(sem("c", 3, 1, "s")), CodeBusy) // one permit is free, but big waits first
	h.wantCode(h.apply(waiting(sem("c", 3, 1, "s"), "c1")), CodePending)
	r := h.release("a", "s")
	big := h.event(r, "big")
	h.wantCode(&big, CodeOK)
	if !slices.Equal(big.Slots, []uint32{0, 2}) {
		t.Fatalf("big got slots %v, want [0 2]", big.Slots)
	}
	h.wantHolders("s", "b", "big")
	r = h.release("b", "s")
	c := h.event(r, "c1")
	h.wantCode(&c, CodeOK)
	h.checkInvariants()
}

// A request that disagrees with how a key is used fails at once with
// wrong_mode naming the key, changes nothing, and is not remembered: a
// semaphore request on a read-write key (held, or only waited for), an
// exclusive or shared request on a semaphore key, another limit, or other
// permits than the owner holds.
func TestWrongModeFailsAtOnce(t *testing.T) {
	h := v2(t)
	h.wantCode(h.apply(exclusive("x", "rw")), CodeOK)
	h.wantCode(h.apply(sem("o", 5, 1, "s")), CodeOK)
	h.wantCode(h.apply(sem("o", 5, 1, "q", "b")), CodeOK)
	h.wantCode(h.apply(waiting(sem("w", 5, 5, "q"), "wq")), CodePending) // q: a semaphore by its holders and its waiter
	h.release("o", "q")
	for _, tc := range []struct {
		c    Command
		key  string
		text string
	}{
		{sem("o", 5, 1, "rw"), "rw", "read-write lock"},
		{exclusive("o", "s"), "s", "semaphore (limit 5)"},
		{shared("o", "s"), "s", "semaphore (limit 5)"},
		{sem("p", 3, 1, "s"), "s", "limit 5, the request names limit 3"},
		{sem("o", 5, 2, "s"), "s", "holds 1 permits"},
		{exclusive("o", "a", "q"), "q", "semaphore"},
	} {
		c := tc.c
		c.RequestID = "rid-" + tc.key
		before := stateWithoutIndex(h.tab)
		r := h.apply(c)
		h.wantCode(r, CodeWrongMode)
		if r.Key != tc.key || !strings.Contains(r.Msg, tc.text) {
			t.Fatalf("%+v: key %q msg %q, want key %q and %q", c, r.Key, r.Msg, tc.key, tc.text)
		}
		if !bytes.Equal(before, stateWithoutIndex(h.tab)) {
			t.Fatalf("%+v changed the table", c)
		}
		if _, ok := h.tab.Outcome(c.RequestID); ok {
			t.Fatalf("%+v was remembered", c)
		}
	}
	// Once a key is free and nobody waits, any mode may take it.
	h.release("o", "s")
	h.wantCode(h.apply(exclusive("o", "s")), CodeOK)
	h.checkInvariants()
}

// Re-entrance by the same owner: shared again and a semaphore with the same
// permits keep their token (and slots) and reset the deadline; a shared
// request by the exclusive holder is re-entrant and the key stays
// exclusive.
func TestModesReentrance(t *testing.T) {
	h := v2(t)
	c := shared("o", "a")
	c.Expire = time.Second
	first := h.apply(c)
	h.advance(500 * time.Millisecond)
	again := h.apply(c)
	if again.Tokens[0] != first.Tokens[0] || again.Deadlines[0] <= first.Deadlines[0] {
		t.Fatalf("re-entrant shared: tokens %v -> %v, deadlines %v -> %v", first.Tokens, again.Tokens, first.Deadlines, again.Deadlines)
	}
	s1 := h.apply(sem("o", 2, 2, "s"))
	s2 := h.apply(sem("o", 2, 2, "s"))
	if s1.Tokens[0] != s2.Tokens[0] || !slices.Equal(s1.Slots, s2.Slots) {
		t.Fatalf("re-entrant semaphore: %v%v -> %v%v", s1.Tokens, s1.Slots, s2.Tokens, s2.Slots)
	}
	x := h.apply(exclusive("w", "b"))
	xs := h.apply(shared("w", "b"))
	h.wantCode(xs, CodeOK)
	if xs.Tokens[0] != x.Tokens[0] {
		t.Fatalf("shared by the writer: token %d, want %d", xs.Tokens[0], x.Tokens[0])
	}
	h.wantHolders("b", "x:w")
	h.wantCode(h.apply(shared("other", "b")), CodeBusy)
	h.checkInvariants()
}

// An exclusive request by an owner whose shared hold is the only one
// upgrades it at once with a new token, ahead of a queued writer (the
// owner blocked it anyway). With other readers it waits, and is granted
// when they are gone.
func TestUpgrade(t *testing.T) {
	h := v2(t)
	r := h.apply(shared("o", "a"))
	h.wantCode(h.apply(waiting(exclusive("w", "a"), "w1")), CodePending)
	up := h.apply(exclusive("o", "a"))
	h.wantCode(up, CodeOK)
	if up.Tokens[0] <= r.Tokens[0] {
		t.Fatalf("upgrade kept token %d (was %d): a writer needs a new one", up.Tokens[0], r.Tokens[0])
	}
	h.wantHolders("a", "x:o")
	ev := h.release("o", "a")
	w := h.event(ev, "w1")
	h.wantCode(&w, CodeOK)
	h.release("w", "a")

	h.wantCode(h.apply(shared("o", "b")), CodeOK)
	h.wantCode(h.apply(shared("p", "b")), CodeOK)
	h.wantCode(h.apply(exclusive("o", "b")), CodeBusy)
	h.wantCode(h.apply(waiting(exclusive("w", "b"), "w2")), CodePending)
	h.wantCode(h.apply(waiting(exclusive("o", "b"), "up")), CodePending)
	ev = h.release("p", "b")
	u := h.event(ev, "up")
	h.wantCode(&u, CodeOK)
	h.wantHolders("b", "x:o")
	h.checkInvariants()
}

// Holds of shared and semaphore keys end one holder at a time: release
// (also by token), refresh, expiry, release_all and abandon touch exactly
// that owner's hold; force_release ends every holder.
func TestGroupHoldsEndOneByOne(t *testing.T) {
	h := v2(t)
	h.apply(shared("a", "k"))
	b := h.apply(shared("b", "k"))
	c := shared("c", "k")
	c.Expire = time.Second
	h.apply(c)
	h.wantCode(h.apply(Command{Op: OpRelease, Keys: []string{"k"}, Owner: "b", HasToken: true, Token: b.Tokens[0] + 1}), CodeNotHeld)
	h.wantCode(h.apply(Command{Op: OpRelease, Keys: []string{"k"}, Owner: "b", HasToken: true, Token: b.Tokens[0]}), CodeOK)
	h.wantHolders("k", "a", "c")
	h.wantCode(h.apply(Command{Op: OpRefresh, Keys: []string{"k"}, Owner: "b"}), CodeNotHeld)
	h.wantCode(h.apply(Command{Op: OpRefresh, Keys: []string{"k"}, Owner: "a", Expire: time.Hour}), CodeOK)
	h.advance(2 * time.Second)
	h.tick()
	h.wantHolders("k", "a") // c expired
	h.apply(shared("a", "k2"))
	h.apply(shared("z", "k2"))
	if r := h.apply(Command{Op: OpReleaseAll, Owner: "a"}); r.Count != 2 {
		t.Fatalf("release_all freed %d, want 2", r.Count)
	}
	h.wantFree("k")
	h.wantHolders("k2", "z")

	// abandon ends exactly the abandoned grant's hold.
	h.apply(shared("y", "k2"))
	g := h.apply(Command{Op: OpAcquire, Keys: []string{"k2"}, Owner: "x", Mode: ModeShared, RequestID: "g", Attempt: 7})
	h.wantCode(g, CodeOK)
	h.wantCode(h.apply(Command{Op: OpAbandon, RequestID: "g", Attempt: 7}), CodeCancelled)
	h.wantHolders("k2", "y", "z")
	if r := h.apply(Command{Op: OpForceRelease, Keys: []string{"k2"}}); r.Count != 1 {
		t.Fatalf("force_release counted %d keys, want 1", r.Count)
	}
	h.wantFree("k2")
	h.checkInvariants()
}

// A retry of a granted semaphore Acquire returns its first answer, slots
// included; the same id with another mode is a reuse, refused.
func TestModesExactlyOnce(t *testing.T) {
	h := v2(t)
	c := sem("o", 4, 2, "s")
	c.RequestID = "r"
	first := h.apply(c)
	again := h.apply(c)
	if !again.Duplicate || !slices.Equal(again.Slots, first.Slots) || again.Tokens[0] != first.Tokens[0] {
		t.Fatalf("retry: %+v, first %+v", again, first)
	}
	other := c
	other.Permits = 1
	h.wantCode(h.apply(other), CodeInvalid)
	other = c
	other.Mode, other.Limit, other.Permits = ModeShared, 0, 0
	h.wantCode(h.apply(other), CodeInvalid)
}

// The table's bound on held locks counts every hold, shared and semaphore
// holders included.
func TestMaxLocksCountsHolds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxLocks = 2
	h := v2(t)
	h.tab = New(cfg)
	h.wantCode(h.apply(Command{Op: OpSetVersion, ClusterVersion: Version2}), CodeOK)
	h.wantCode(h.apply(shared("a", "k")), CodeOK)
	h.wantCode(h.apply(shared("b", "k")), CodeOK)
	h.wantCode(h.apply(shared("c", "k")), CodeExhausted)
	h.wantCode(h.apply(shared("a", "k")), CodeOK) // re-entrant: no new hold
}

// A snapshot carries groups (mode, limit, holders, slots), waiters' modes
// and records' slots, byte for byte, and the restored table goes on
// exactly as the original.
func TestSnapshotWithModes(t *testing.T) {
	h := v2(t)
	h.apply(shared("r1", "a"))
	h.apply(shared("r2", "a"))
	h.apply(waiting(exclusive("w", "a"), "w1"))
	c := sem("s1", 3, 2, "s")
	c.RequestID, c.Expire = "s1", time.Minute
	h.apply(c)
	h.apply(waiting(sem("s2", 3, 2, "s"), "s2"))
	before, _ := h.tab.Get("s")
	h.snapshotRoundTrip()
	after, _ := h.tab.Get("s")
	if after.Limit != 3 || len(after.Holders) != 1 || !slices.Equal(after.Holders[0].Slots, before.Holders[0].Slots) {
		t.Fatalf("restored %+v, was %+v", after, before)
	}
	if out, _ := h.tab.Outcome("s1"); !slices.Equal(out.Slots, []uint32{0, 1}) {
		t.Fatalf("restored record slots %v", out.Slots)
	}
	h.checkInvariants()
	r := h.release("s1", "s")
	e := h.event(r, "s2")
	h.wantCode(&e, CodeOK)
	h.release("r1", "a")
	r = h.release("r2", "a")
	e = h.event(r, "w1")
	h.wantCode(&e, CodeOK)
	h.checkInvariants()
}

// Holds of one key with the same deadline expire in owner order on every
// replica, so the slots a waiter gets do not depend on the heap's layout.
func TestEqualDeadlinesExpireInOwnerOrder(t *testing.T) {
	a := &timer{deadline: 5, lock: &lock{key: "k", owner: "a"}}
	b := &timer{deadline: 5, lock: &lock{key: "k", owner: "b"}}
	if !a.less(b) || b.less(a) {
		t.Fatal("timers of one key and deadline are not ordered by owner")
	}
}
