package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcFloor sets the garbage collector's heap goal to max(floor, 1.5 x live)
// after every collection, instead of GOGC=100's 2 x live.
//
// A node's live heap is small until it holds many locks (a few MiB), while
// every request allocates: with GOGC=100 it ran a cycle every few
// milliseconds under load and spent a fifth of its CPU marking. Below the
// floor gcFloor raises GOGC so that the next goal is the floor. A node
// with a large table (a million locks is about 230 MiB live) has the
// opposite problem: doubling the live heap costs more memory than the rare
// cycles save CPU, so above two thirds of the floor's worth gcFloor keeps
// 50 % headroom (GOGC=50). The floor therefore costs at most its own size
// in memory, and a large table 25 % less than with GOGC=100.
type gcFloor struct {
	floor   uint64
	percent int
	sample  []metrics.Sample
}

// startGCFloor starts the floor of floor bytes, unless the environment
// sets GOGC or GOMEMLIMIT (the operator's word wins) or floor is 0.
func startGCFloor(floor uint64) bool {
	if floor == 0 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	started := false
	gcFloorOnce.Do(func() { started = true })
	if !started { // one per process (tests call run more than once)
		return true
	}
	g := &gcFloor{floor: floor, percent: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	g.tune()
	g.arm()
	return true
}

var gcFloorOnce sync.Once

// sentinel is garbage as soon as it is made, so its cleanup runs after the
// next collection. (It holds a pointer so the allocator never batches it
// with other tiny objects, which could keep it alive.)
type sentinel struct {
	_ *int
	_ [8]byte
}

func (g *gcFloor) arm() {
	runtime.AddCleanup(new(sentinel), func(g *gcFloor) {
		g.tune()
		g.arm()
	}, g)
}

// heapMinimum is the runtime's smallest heap goal at GOGC=100; it scales
// with GOGC like the goal itself.
const heapMinimum = 4 << 20

// gcPercent is the GOGC that makes the heap goal max(floor, 1.5 x live).
func gcPercent(live, floor uint64) int {
	// Below the minimum the runtime's own minimum goal (4 MiB x GOGC/100)
	// decides; counting live as at least that keeps it under the floor too.
	live = max(live, heapMinimum)
	if 3*live >= 2*floor {
		return 50
	}
	return max(int(floor*100/live)-100, 50)
}

// tune sets GOGC so that the next heap goal is max(floor, 1.5 x live).
func (g *gcFloor) tune() {
	metrics.Read(g.sample)
	var live uint64
	if g.sample[0].Value.Kind() == metrics.KindUint64 {
		live = g.sample[0].Value.Uint64()
	}
	percent := gcPercent(live, g.floor)
	// Small moves are not worth a call (each takes the heap lock).
	if d := percent - g.percent; d > g.percent/8 || -d > g.percent/8 {
		debug.SetGCPercent(percent)
		g.percent = percent
	}
}
