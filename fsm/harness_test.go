package fsm

import (
	"bytes"
	"testing"
	"time"
)

// harness drives a Table the way Raft would: increasing indexes, and a
// cluster time the test moves by hand.
type harness struct {
	t     testing.TB
	tab   *Table
	index uint64
	now   int64
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, tab: New(DefaultConfig()), now: int64(time.Hour)}
}

// apply encodes and decodes c (so every test also exercises the encoding)
// and applies it at the next index, stamped with the harness time.
func (h *harness) apply(c Command) *Result {
	h.t.Helper()
	c.Time = h.now
	dec, err := Decode(c.Encode(nil))
	if err != nil {
		h.t.Fatalf("decode %+v: %v", c, err)
	}
	h.index++
	return h.tab.Apply(h.index, dec)
}

func (h *harness) advance(d time.Duration) { h.now += int64(d) }

func (h *harness) acquire(owner string, keys ...string) *Result {
	h.t.Helper()
	return h.apply(Command{Op: OpAcquire, Keys: keys, Owner: owner})
}

func (h *harness) acquireWait(rid, owner string, expire, wait time.Duration, keys ...string) *Result {
	h.t.Helper()
	return h.apply(Command{Op: OpAcquire, Keys: keys, Owner: owner, Expire: expire, Wait: wait, RequestID: rid})
}

func (h *harness) release(owner string, keys ...string) *Result {
	h.t.Helper()
	return h.apply(Command{Op: OpRelease, Keys: keys, Owner: owner})
}

func (h *harness) tick() *Result {
	h.t.Helper()
	return h.apply(Command{Op: OpTick})
}

// holder returns the owner and token of key, or ok=false if it is free.
func (h *harness) holder(key string) (string, uint64, bool) {
	l, ok := h.tab.Get(key)
	return l.Owner, l.Token, ok
}

func (h *harness) wantCode(r *Result, want Code) {
	h.t.Helper()
	if r.Code != want {
		h.t.Fatalf("code = %s (key %q, msg %q), want %s", r.Code, r.Key, r.Msg, want)
	}
}

func (h *harness) wantHolder(key, owner string) uint64 {
	h.t.Helper()
	got, tok, ok := h.holder(key)
	if !ok {
		h.t.Fatalf("key %q is free, want held by %q", key, owner)
	}
	if got != owner {
		h.t.Fatalf("key %q held by %q, want %q", key, got, owner)
	}
	return tok
}

func (h *harness) wantFree(key string) {
	h.t.Helper()
	if owner, _, ok := h.holder(key); ok {
		h.t.Fatalf("key %q held by %q, want free", key, owner)
	}
}

// event returns the event for request id rid in r, failing if absent.
func (h *harness) event(r *Result, rid string) Result {
	h.t.Helper()
	for _, e := range r.Events {
		if e.RequestID == rid {
			return e
		}
	}
	h.t.Fatalf("no event for %q in %+v", rid, r.Events)
	return Result{}
}

// snapshotRoundTrip restores the table from its snapshot and checks the
// restored table writes the same bytes.
func (h *harness) snapshotRoundTrip() {
	h.t.Helper()
	b := h.tab.AppendSnapshot(nil)
	tab, err := Restore(DefaultConfig(), b)
	if err != nil {
		h.t.Fatalf("restore: %v", err)
	}
	if b2 := tab.AppendSnapshot(nil); !bytes.Equal(b, b2) {
		h.t.Fatalf("snapshot of restored table differs (%d vs %d bytes)", len(b), len(b2))
	}
	h.tab = tab
}
