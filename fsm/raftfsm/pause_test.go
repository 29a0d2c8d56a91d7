package raftfsm

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/raftlock/raftlock/fsm"
)

// BenchmarkSnapshotPause measures how long writes wait while Raft takes a
// snapshot of a table holding PAUSE_LOCKS locks (default 1,000,000), with
// the snapshot encoded under the table's lock ("under-lock", the fallback
// and the behaviour before replayed snapshots) and rebuilt from the last
// snapshot and the log ("replayed"), side by side on the same table. The
// setting is a node's: the log in raft-wal on disk, file snapshots, a base
// snapshot and 16,384 entries after it (Raft's default threshold). A
// writer appends and applies one acquire-and-release pair every 2 ms on
// the goroutine that applies entries, which is also where Raft calls
// Snapshot (so nothing is applied while Snapshot runs); Persist runs on
// another goroutine, as on Raft's snapshot goroutine.
//
// Reported, the worst over the snapshots taken: snapshot-call-ms, how long
// Snapshot blocked the apply goroutine; max-wait-ms and p99-wait-ms, the
// longest and the 99th percentile of the times writes waited to be
// applied while the snapshot was taken (from Snapshot to the end of
// Persist); persist-ms, the Persist time (disk included).
//
//	go test -run '^$' -bench BenchmarkSnapshotPause -benchtime 3x ./fsm/raftfsm/
func BenchmarkSnapshotPause(b *testing.B) {
	held := 1_000_000
	if v := os.Getenv("PAUSE_LOCKS"); v != "" {
		var err error
		if held, err = strconv.Atoi(v); err != nil {
			b.Fatalf("PAUSE_LOCKS: %v", err)
		}
	}
	p := newPauseBench(b, held)
	// Replayed first: its first base is then 16,384 entries behind, as on
	// a node (the under-lock runs leave fresh snapshots behind).
	b.Run("replayed", func(b *testing.B) { p.run(b, modeReplayed) })
	b.Run("under-lock", func(b *testing.B) { p.run(b, modeUnderLock) })
	// The same writer for a second without a snapshot: what the machine
	// itself makes writes wait.
	b.Run("no-snapshot", func(b *testing.B) { p.run(b, modeNone) })
}

type pauseBench struct {
	logs  *wal.WAL
	snaps *raft.FileSnapshotStore
	plain *FSM // the same table, snapshotted under the lock
	index uint64
	now   int64
}

func newPauseBench(b *testing.B, held int) *pauseBench {
	dir := b.TempDir()
	meta := &metadb.BoltMetaDB{}
	logs, err := wal.Open(dir, wal.WithMetaStore(meta), wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logs.Close(); meta.Close() })
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 3, hclog.NewNullLogger())
	if err != nil {
		b.Fatal(err)
	}
	p := &pauseBench{logs: logs, snaps: snaps, plain: New(fsm.DefaultConfig(), Hooks{}), now: int64(time.Hour)}
	var batch []*raft.Log
	flush := func() {
		if err := logs.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
		p.plain.ApplyBatch(batch)
		batch = batch[:0]
	}
	add := func(c fsm.Command) {
		p.index++
		p.now += int64(time.Microsecond)
		c.Time = p.now
		batch = append(batch, &raft.Log{Index: p.index, Term: 1, Type: raft.LogCommand, Data: c.Encode(nil)})
		if len(batch) == 1000 {
			flush()
		}
	}
	for i := 0; i < held; i += 64 {
		keys := make([]string, 0, 64)
		for k := i; k < min(i+64, held); k++ {
			keys = append(keys, fmt.Sprintf("fill/%09d", k))
		}
		add(fsm.Command{Op: fsm.OpAcquire, Keys: keys, Owner: "lockbench-fill"})
	}
	flush()
	snap, _ := p.plain.Snapshot()
	sink, err := snaps.Create(raft.SnapshotVersionMax, p.index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		b.Fatal(err)
	}
	snap.Release()
	for i := range 16384 / 2 {
		add(fsm.Command{Op: fsm.OpAcquire, Keys: []string{fmt.Sprintf("churn/%d", i)}, Owner: "w", Expire: time.Minute})
		add(fsm.Command{Op: fsm.OpRelease, Keys: []string{fmt.Sprintf("churn/%d", i)}, Owner: "w"})
	}
	flush()
	return p
}

// How run takes its snapshots.
const (
	modeUnderLock = iota
	modeReplayed
	modeNone // no snapshot: the writer alone for a second
)

// run takes one snapshot per iteration while the writer goes on.
func (p *pauseBench) run(b *testing.B, mode int) {
	f := p.plain
	if mode == modeReplayed {
		// The same table, with the stores behind it.
		f = &FSM{cfg: p.plain.cfg, table: p.plain.table, applied: p.plain.applied, changed: p.plain.changed}
		WithReplay(p.logs, p.snaps)(f)
	}
	var calls, maxWaits, p99s, persists []time.Duration
	for b.Loop() {
		call, waits, persist := p.once(b, f, mode != modeNone)
		slices.Sort(waits)
		calls, persists = append(calls, call), append(persists, persist)
		maxWaits, p99s = append(maxWaits, waits[len(waits)-1]), append(p99s, waits[len(waits)*99/100])
	}
	b.ReportMetric(ms(slices.Max(calls)), "snapshot-call-ms")
	b.ReportMetric(ms(slices.Max(maxWaits)), "max-wait-ms")
	b.ReportMetric(ms(slices.Max(p99s)), "p99-wait-ms")
	b.ReportMetric(ms(slices.Max(persists)), "persist-ms")
	p.plain.table, p.plain.applied, p.plain.changed = f.table, f.applied, f.changed
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// once runs the writer, takes a snapshot on the apply goroutine a little
// after it starts, persists it on another goroutine, and returns how long
// Snapshot took, how long each write waited meanwhile, and Persist's time.
func (p *pauseBench) once(b *testing.B, f *FSM, snapshot bool) (call time.Duration, waits []time.Duration, persist time.Duration) {
	type write struct {
		sent time.Time
		l    *raft.Log
	}
	writes := make(chan write, 1<<16)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the clients: one write every 2 ms, stored in the log first
		defer wg.Done()
		defer close(writes)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			p.index++
			p.now += int64(time.Millisecond)
			op := fsm.OpAcquire
			if i%2 == 1 {
				op = fsm.OpRelease
			}
			l := &raft.Log{Index: p.index, Term: 1, Type: raft.LogCommand,
				Data: (&fsm.Command{Op: op, Time: p.now, Keys: []string{"pause/k"}, Owner: "w"}).Encode(nil)}
			if err := p.logs.StoreLog(l); err != nil {
				b.Error(err)
				return
			}
			writes <- write{time.Now(), l}
		}
	}()
	persisted := make(chan time.Duration, 1)
	var snapStart time.Time
	snapAt := time.Now().Add(200 * time.Millisecond)
	taken := false
	for w := range writes { // the apply goroutine
		f.ApplyBatch([]*raft.Log{w.l})
		if wait := time.Since(w.sent); !snapStart.IsZero() && w.sent.After(snapStart.Add(-2*time.Millisecond)) {
			waits = append(waits, wait)
		}
		if !taken && !snapshot && time.Now().After(snapAt) {
			taken = true
			snapStart = time.Now()
			time.AfterFunc(time.Second, func() { persisted <- 0 })
		}
		if !taken && snapshot && time.Now().After(snapAt) {
			taken = true
			snapStart = time.Now()
			snap, err := f.Snapshot()
			call = time.Since(snapStart)
			if err != nil {
				b.Fatal(err)
			}
			index := f.Applied()
			go func() {
				start := time.Now()
				sink, err := p.snaps.Create(raft.SnapshotVersionMax, index, 1, raft.Configuration{}, 1, nil)
				if err == nil {
					err = snap.Persist(sink)
				}
				snap.Release()
				if err != nil {
					b.Error(err)
				}
				persisted <- time.Since(start)
			}()
		}
		if taken {
			select {
			case persist = <-persisted:
				close(stop)
				taken = false
				snapAt = time.Now().Add(time.Hour)
			default:
			}
		}
	}
	wg.Wait()
	if len(waits) == 0 {
		b.Fatal("no write was applied while the snapshot was taken")
	}
	return call, waits, persist
}
