package checker

import (
	"testing"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// Promise 2: two clients never believe they hold a key at the same time.
func TestMutualExclusion(t *testing.T) {
	t.Run("release before the next acquire returns", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 1000)
		b.release(1, "a", 50, 60, ok, true, 0)
		b.acquire(2, "b", 40, 55, ok, 8, 1000) // returned after a's release was invoked
		wantOK(t, MutualExclusion(b.ops))
	})
	t.Run("deadline passes before the takeover", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100) // deadline 90, never released
		b.acquire(2, "b", 80, 95, ok, 8, 100)
		wantOK(t, MutualExclusion(b.ops))
	})
	t.Run("unknown and resolved acquires are not believed", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, unknown, 0, 0)
		r := b.acquire(3, "c", 0, 10, ok, 4, 0)
		r.Resolved, r.Deadline = true, 0
		b.acquire(2, "b", 20, 30, ok, 8, 0)
		wantOK(t, MutualExclusion(b.ops))
	})
	t.Run("other keys do not conflict", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 0)
		b.acquire(2, "b", 0, 10, ok, 6, 0).Key = "k2"
		wantOK(t, MutualExclusion(b.ops))
	})
	t.Run("a refresh that returned after the deadline does not extend", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100) // deadline 90
		b.refresh(1, "a", 80, 95, ok, 100)   // returned at 95 > 90: client already stopped
		b.acquire(2, "b", 100, 110, ok, 8, 100)
		wantOK(t, MutualExclusion(b.ops))
	})
	t.Run("double holders", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 0)
		b.acquire(2, "b", 20, 30, ok, 8, 0)
		b.release(1, "a", 40, 50, ok, true, 0)
		wantFail(t, MutualExclusion(b.ops), `key "k"`, "owner a", "owner b", "same time")
	})
	t.Run("takeover before the holder's deadline", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100) // deadline 90
		b.acquire(2, "b", 50, 60, ok, 8, 100)
		wantFail(t, MutualExclusion(b.ops), "same time")
	})
	t.Run("takeover during a refreshed lease", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100) // deadline 90
		b.refresh(1, "a", 50, 60, ok, 100)   // deadline 140
		b.acquire(2, "b", 100, 120, ok, 8, 100)
		wantFail(t, MutualExclusion(b.ops), "same time")
	})
	t.Run("three holders, the long one overlapping a later one", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 0) // never released
		b.acquire(2, "b", 20, 30, ok, 8, 100)
		b.release(2, "b", 40, 45, ok, true, 0)
		b.acquire(3, "c", 50, 60, ok, 9, 100)
		r := MutualExclusion(b.ops)
		wantFail(t, r, "owner c")
		if r.Stats["problems"] != 2 {
			t.Fatalf("problems = %d, want 2 (a-b and a-c)", r.Stats["problems"])
		}
	})
	t.Run("missing deadline falls back to invoke+ttl", func(t *testing.T) {
		var b h
		a := b.acquire(1, "a", 0, 10, ok, 5, 100)
		a.Deadline = 0
		b.acquire(2, "b", 95, 99, ok, 8, 100) // inside 0+100
		r := MutualExclusion(b.ops)
		wantFail(t, r, "same time")
		if r.Stats["deadlines_missing"] != 1 {
			t.Fatalf("stats = %v", r.Stats)
		}
	})
	t.Run("empty history", func(t *testing.T) {
		wantOK(t, MutualExclusion(nil))
		wantOK(t, MutualExclusion([]history.Op{}))
	})
}
