package fsm

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// restoreFixture is a version 2 table with an exclusive lock (expiring and
// not), a shared key with two holders, a semaphore, a remembered request,
// and two waiters: w1 behind a held key, w2 behind w1 on a key that is
// free but promised to w1 (so dropping w1 with a hand-off would grant w2).
func restoreFixture(t *testing.T) *harness {
	h := newHarness(t)
	h.wantCode(h.apply(Command{Op: OpSetVersion, ClusterVersion: Version2}), CodeOK)
	h.wantCode(h.apply(Command{Op: OpAcquire, Keys: []string{"a"}, Owner: "o1", Expire: time.Minute, RequestID: "r-a"}), CodeOK)
	h.wantCode(h.apply(Command{Op: OpAcquire, Keys: []string{"forever"}, Owner: "o2"}), CodeOK)
	for _, o := range []string{"r1", "r2"} {
		h.wantCode(h.apply(Command{Op: OpAcquire, Keys: []string{"shared"}, Owner: o, Mode: ModeShared, Expire: 2 * time.Minute}), CodeOK)
	}
	h.wantCode(h.apply(Command{Op: OpAcquire, Keys: []string{"sem"}, Owner: "s1", Mode: ModeSemaphore, Limit: 3, Permits: 2, Expire: time.Minute}), CodeOK)
	h.wantCode(h.acquireWait("w1", "o3", time.Minute, time.Minute, "a", "b"), CodePending)
	h.wantCode(h.acquireWait("w2", "o4", time.Minute, time.Minute, "b"), CodePending)
	h.advance(10 * time.Second)
	h.tick()
	if err := h.tab.checkInvariants(); err != nil {
		t.Fatal(err)
	}
	return h
}

// A restore drops every waiter without handing its keys on, and their
// requests end cancelled; holds keep owners, tokens and remaining time.
func TestPrepareRestoreDropsWaitersKeepsLocks(t *testing.T) {
	h := restoreFixture(t)
	before, _ := h.tab.List(ListOptions{})
	now := h.tab.Now()
	rep, err := h.tab.PrepareRestore(RestoreOptions{Index: 1 << 48, Now: now - int64(time.Hour), Version: Version1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Dropped) != 2 || rep.Dropped[0].RequestID != "w1" || rep.Dropped[1].RequestID != "w2" || rep.Dropped[0].Owner != "o3" {
		t.Fatalf("dropped = %+v, want w1 then w2", rep.Dropped)
	}
	if rep.Shift != 0 || h.tab.Now() != now {
		t.Fatalf("an earlier cluster time moved the table's: shift %v, now %d -> %d", rep.Shift, now, h.tab.Now())
	}
	if st := h.tab.Stats(); st.Waiters != 0 {
		t.Fatalf("waiters left: %+v", st)
	}
	for _, rid := range []string{"w1", "w2"} {
		if out, ok := h.tab.Outcome(rid); !ok || out.Code != CodeCancelled {
			t.Fatalf("outcome of %s = %+v, %v; want cancelled", rid, out, ok)
		}
	}
	h.wantFree("b") // w2 was not granted on the way
	after, _ := h.tab.List(ListOptions{})
	for i := range before {
		before[i].Waiters = 0 // the queues are gone; the rest must not change
	}
	if len(after) != len(before) {
		t.Fatalf("locks %d -> %d", len(before), len(after))
	}
	for i := range before {
		if !sameLock(before[i], after[i]) {
			t.Fatalf("lock changed by the restore:\n%+v\n%+v", before[i], after[i])
		}
	}
	if h.tab.Version() != Version2 {
		t.Fatalf("version = %d, want 2 kept (the new cluster's 1 is lower)", h.tab.Version())
	}
	if err := h.tab.checkInvariants(); err != nil {
		t.Fatal(err)
	}
	h.snapshotRoundTrip()
}

func sameLock(a, b LockInfo) bool {
	if a.Key != b.Key || a.Owner != b.Owner || a.Token != b.Token || a.Deadline != b.Deadline || a.Mode != b.Mode ||
		a.Limit != b.Limit || a.Waiters != b.Waiters || len(a.Holders) != len(b.Holders) {
		return false
	}
	for i := range a.Holders {
		if a.Holders[i].Owner != b.Holders[i].Owner || a.Holders[i].Token != b.Holders[i].Token ||
			a.Holders[i].Deadline != b.Holders[i].Deadline || len(a.Holders[i].Slots) != len(b.Holders[i].Slots) {
			return false
		}
	}
	return true
}

// Restored into a cluster whose time is later, the table takes that time,
// and every hold keeps its remaining time and every remembered request
// its remaining memory; later grants get tokens above the restore index.
func TestPrepareRestoreShiftsTimeAndStartsAboveIndex(t *testing.T) {
	h := restoreFixture(t)
	remaining := map[string]int64{}
	locks, _ := h.tab.List(ListOptions{})
	for _, l := range locks {
		if l.Deadline != 0 {
			remaining[l.Key] = l.Deadline - h.tab.Now()
		}
	}
	rec, _ := h.tab.Outcome("r-a")
	wantDeadline := rec.Deadlines[0] + int64(3*time.Hour) // (the result shares the record's slice)
	later := h.tab.Now() + int64(3*time.Hour)
	const start = 5 << 48
	rep, err := h.tab.PrepareRestore(RestoreOptions{Index: start, Now: later, Version: Version2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Shift != 3*time.Hour || h.tab.Now() != later {
		t.Fatalf("shift %v, now %d; want 3h and %d", rep.Shift, h.tab.Now(), later)
	}
	locks, _ = h.tab.List(ListOptions{})
	for _, l := range locks {
		if want, ok := remaining[l.Key]; ok && l.Deadline-h.tab.Now() != want {
			t.Fatalf("%s: %v left after the restore, want %v", l.Key, time.Duration(l.Deadline-h.tab.Now()), time.Duration(want))
		}
		if _, ok := remaining[l.Key]; !ok && l.Deadline != 0 {
			t.Fatalf("%s never expired before the restore, now at %d", l.Key, l.Deadline)
		}
	}
	if got, _ := h.tab.Outcome("r-a"); got.Deadlines[0] != wantDeadline {
		t.Fatalf("remembered deadline %d, want %d", got.Deadlines[0], wantDeadline)
	}
	if err := h.tab.checkInvariants(); err != nil {
		t.Fatal(err)
	}
	// The harness goes on from the restored state.
	h.index, h.now = start, later
	h.advance(30 * time.Second)
	r := h.acquire("new", "fresh")
	h.wantCode(r, CodeOK)
	if r.Tokens[0] <= start {
		t.Fatalf("token %d after a restore at %d", r.Tokens[0], start)
	}
	h.wantHolder("a", "o1") // 60s TTL: 10s used before, 30s after
	h.advance(21 * time.Second)
	h.tick()
	h.wantFree("a")
	// r-a (resolved 10s before the save) is remembered for RequestTTL
	// counted without the time between save and restore.
	if _, ok := h.tab.Outcome("r-a"); !ok {
		t.Fatal("r-a forgotten early")
	}
	h.advance(DefaultConfig().RequestTTL)
	h.tick()
	if _, ok := h.tab.Outcome("r-a"); ok {
		t.Fatal("r-a remembered past its time")
	}
	h.snapshotRoundTrip()
}

// PrepareRestore refuses an index below the table's, or a version this
// build does not know, and changes nothing then.
func TestPrepareRestoreRefuses(t *testing.T) {
	h := restoreFixture(t)
	snap := h.tab.AppendSnapshot(nil)
	for _, o := range []RestoreOptions{
		{Index: h.tab.Index() - 1, Now: h.tab.Now() + 1},
		{Index: h.tab.Index(), Now: h.tab.Now() + 1, Version: SupportedVersion + 1},
	} {
		if _, err := h.tab.PrepareRestore(o); !errors.Is(err, ErrRestore) {
			t.Fatalf("%+v: err = %v, want ErrRestore", o, err)
		}
		if !bytes.Equal(h.tab.AppendSnapshot(nil), snap) {
			t.Fatalf("%+v: a refused restore changed the table", o)
		}
	}
}

// A version 1 table restored into a version 2 cluster becomes version 2
// (its snapshots then carry the version 2 layout).
func TestPrepareRestoreRaisesVersion(t *testing.T) {
	h := newHarness(t)
	h.wantCode(h.acquire("o", "k"), CodeOK)
	if _, err := h.tab.PrepareRestore(RestoreOptions{Index: 100, Now: h.tab.Now(), Version: Version2}); err != nil {
		t.Fatal(err)
	}
	info, err := PeekSnapshot(h.tab.AppendSnapshot(nil))
	if err != nil || info.Version != Version2 || info.Index != 100 || info.Now != h.tab.Now() {
		t.Fatalf("peek = %+v, %v", info, err)
	}
	h.snapshotRoundTrip()
	h.wantHolder("k", "o")
}

// PeekSnapshot reads the start of both versions, from the first bytes
// alone, and refuses what is not a snapshot or is too new.
func TestPeekSnapshot(t *testing.T) {
	h := newHarness(t)
	h.wantCode(h.acquire("o", "k"), CodeOK)
	v1 := h.tab.AppendSnapshot(nil)
	if info, err := PeekSnapshot(v1[:min(len(v1), SnapshotPeekLen)]); err != nil || info != (SnapshotInfo{Version: 1, Index: h.index, Now: h.now}) {
		t.Fatalf("v1 peek = %+v, %v", info, err)
	}
	h.wantCode(h.apply(Command{Op: OpSetVersion, ClusterVersion: Version2}), CodeOK)
	v2 := h.tab.AppendSnapshot(nil)
	if info, err := PeekSnapshot(v2); err != nil || info != (SnapshotInfo{Version: 2, Index: h.index, Now: h.now}) {
		t.Fatalf("v2 peek = %+v, %v", info, err)
	}
	if _, err := PeekSnapshot([]byte("nope")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage: %v", err)
	}
	newer := bytes.Clone(v2)
	newer[len(snapshotMagic)] = byte(SupportedVersion + 1)
	if _, err := PeekSnapshot(newer); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("newer: %v", err)
	}
}
