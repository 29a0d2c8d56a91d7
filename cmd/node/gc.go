package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcHeadroom caps how far the Go heap may grow past its live size before
// the garbage collector runs: by at most max(limit, half the live heap),
// where Go's default (GOGC=100) lets it double.
//
// A node with a small table keeps the default: the limit is above its live
// heap. A node with a large one (a million locks is about 200 MiB live)
// would otherwise grow to twice that between collections, which alone
// takes it past 400 MiB of RSS; with the limit its collections come about
// twice as often, each marking the same live heap. After every collection
// gcHeadroom sets GOGC from the live heap the collection found.
//
// A floor the other way (a large heap goal for a small table, to collect
// less often) was tried and dropped: on three nodes sharing two cores it
// made pairs cost 10-15 % more CPU at one caller and at 64 (page faults and
// cache misses in the larger heap outweighed the fewer collections).
type gcHeadroom struct {
	limit   uint64
	percent int
	sample  []metrics.Sample
}

var gcHeadroomOnce sync.Once

// startGCHeadroom caps the headroom at limit bytes, unless the environment sets
// GOGC or GOMEMLIMIT (the operator's word wins) or limit is 0.
func startGCHeadroom(limit uint64) bool {
	if limit == 0 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return false
	}
	gcHeadroomOnce.Do(func() { // one per process (tests call run more than once)
		g := &gcHeadroom{limit: limit, percent: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
		g.arm()
	})
	return true
}

// sentinel is garbage as soon as it is made, so its cleanup runs after the
// next collection. (It holds a pointer so the allocator never batches it
// with other tiny objects, which could keep it alive.)
type sentinel struct {
	_ *int
	_ [8]byte
}

func (g *gcHeadroom) arm() {
	runtime.AddCleanup(new(sentinel), func(g *gcHeadroom) {
		g.tune()
		g.arm()
	}, g)
}

// gcPercent is the GOGC that lets the heap grow past live by
// min(live, max(limit, live/2)): 100 up to limit, falling to 50 at twice limit.
func gcPercent(live, limit uint64) int {
	if live <= limit {
		return 100
	}
	return max(int(limit*100/live), 50)
}

// tune sets GOGC for the live heap the last collection found.
func (g *gcHeadroom) tune() {
	metrics.Read(g.sample)
	if g.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	percent := gcPercent(g.sample[0].Value.Uint64(), g.limit)
	// Small moves are not worth a call (each takes the heap lock).
	if d := percent - g.percent; d > g.percent/8 || -d > g.percent/8 {
		debug.SetGCPercent(percent)
		g.percent = percent
	}
}
