package main

import "testing"

// The GC goal is the floor while the live heap is small (never more, also
// below the runtime's 4 MiB minimum, which scales with GOGC), and 1.5 x
// the live heap once that is larger than the floor.
func TestGCPercentGoal(t *testing.T) {
	const mib = 1 << 20
	floor := uint64(64 * mib)
	for _, live := range []uint64{0, 1 * mib, 4 * mib, 10 * mib, 32 * mib, 42 * mib, 43 * mib, 64 * mib, 230 * mib, 4096 * mib} {
		p := gcPercent(live, floor)
		if p < 50 {
			t.Fatalf("live %d MiB: GOGC %d below 50", live/mib, p)
		}
		goal := max(live, heapMinimum) * uint64(100+p) / 100
		want := max(floor, live*3/2)
		if goal > want || goal < want*9/10 {
			t.Errorf("live %d MiB: GOGC %d gives a goal of %d MiB, want about %d MiB", live/mib, p, goal/mib, want/mib)
		}
		if minimum := uint64(heapMinimum) * uint64(p) / 100; minimum > floor {
			t.Errorf("live %d MiB: GOGC %d makes the runtime's minimum goal %d MiB, over the floor", live/mib, p, minimum/mib)
		}
	}
}
