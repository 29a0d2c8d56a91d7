package main

import "testing"

// The heap may grow past its live size by as much as Go's default allows
// (GOGC=100, doubling) while that is at most the cap, and by max(cap,
// live/2) beyond: never less than half the live heap, never more than
// the default.
func TestGCPercentHeadroom(t *testing.T) {
	const mib = 1 << 20
	limit := uint64(64 * mib)
	for _, live := range []uint64{0, 1 * mib, 10 * mib, 64 * mib, 65 * mib, 100 * mib, 128 * mib, 200 * mib, 4096 * mib} {
		p := gcPercent(live, limit)
		if p < 50 || p > 100 {
			t.Fatalf("live %d MiB: GOGC %d outside 50..100", live/mib, p)
		}
		headroom := live * uint64(p) / 100
		want := min(live, max(limit, live/2))
		if headroom > want || headroom+mib < want {
			t.Errorf("live %d MiB: GOGC %d gives %d MiB of headroom, want %d MiB", live/mib, p, headroom/mib, want/mib)
		}
	}
}
