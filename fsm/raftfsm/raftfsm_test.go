package raftfsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftlock/raftlock/fsm"
)

func entry(index uint64, c fsm.Command) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: c.Encode(nil)}
}

// Apply decodes, applies and reports results to the observer, events
// included; non-command entries only move the applied index.
func TestApplyAndObserve(t *testing.T) {
	var seen []*fsm.Result
	f := New(fsm.DefaultConfig(), Hooks{Applied: func(r *fsm.Result) { seen = append(seen, r) }})
	r := f.Apply(entry(1, fsm.Command{Op: fsm.OpAcquire, Time: 10, Keys: []string{"k"}, Owner: "a"})).(*fsm.Result)
	if r.Code != fsm.CodeOK || r.Tokens[0] != 1 {
		t.Fatalf("acquire = %+v", r)
	}
	changed := f.Changed()
	out := f.ApplyBatch([]*raft.Log{
		entry(2, fsm.Command{Op: fsm.OpAcquire, Time: 11, Keys: []string{"k"}, Owner: "b", Wait: time.Minute, RequestID: "w"}),
		{Index: 3, Type: raft.LogConfiguration},
		entry(4, fsm.Command{Op: fsm.OpRelease, Time: 12, Keys: []string{"k"}, Owner: "a"}),
	})
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed after a batch")
	}
	if out[1] != nil || out[0].(*fsm.Result).Code != fsm.CodePending {
		t.Fatalf("batch results = %v", out)
	}
	if rel := out[2].(*fsm.Result); len(rel.Events) != 1 || rel.Events[0].RequestID != "w" || rel.Events[0].Code != fsm.CodeOK {
		t.Fatalf("release events = %+v", rel.Events)
	}
	if len(seen) != 3 {
		t.Fatalf("observer saw %d results, want 3", len(seen))
	}
	if f.Applied() != 4 || f.Now() != 12 {
		t.Fatalf("applied %d now %d", f.Applied(), f.Now())
	}
}

// An entry that cannot be decoded panics with its index.
func TestApplyPanicsOnGarbage(t *testing.T) {
	f := New(fsm.DefaultConfig(), Hooks{})
	defer func() {
		msg, _ := recover().(string)
		if !strings.Contains(msg, "index 7") {
			t.Fatalf("panic = %q, want it to name index 7", msg)
		}
	}()
	f.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: []byte{9, 9, 9}})
	t.Fatal("no panic")
}

type sink struct {
	bytes.Buffer
	cancelled, closed bool
	failWrite         bool
}

func (s *sink) Write(p []byte) (int, error) {
	if s.failWrite {
		return 0, io.ErrShortWrite
	}
	return s.Buffer.Write(p)
}
func (s *sink) Close() error  { s.closed = true; return nil }
func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { s.cancelled = true; return nil }

// Snapshot, Persist and Restore carry the whole table; Persist cancels
// the sink when a write fails.
func TestSnapshotRestore(t *testing.T) {
	f := New(fsm.DefaultConfig(), Hooks{})
	f.Apply(entry(1, fsm.Command{Op: fsm.OpAcquire, Time: 10, Keys: []string{"k"}, Owner: "a", Expire: time.Minute}))
	f.Apply(entry(2, fsm.Command{Op: fsm.OpAcquire, Time: 11, Keys: []string{"k"}, Owner: "b", Wait: time.Minute, RequestID: "w"}))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var s sink
	if err := snap.Persist(&s); err != nil || !s.closed {
		t.Fatalf("persist: %v closed=%v", err, s.closed)
	}
	var restored uint64
	g := New(fsm.DefaultConfig(), Hooks{Restored: func(i uint64) { restored = i }})
	if err := g.Restore(io.NopCloser(bytes.NewReader(s.Bytes()))); err != nil {
		t.Fatal(err)
	}
	var info fsm.LockInfo
	g.Read(func(tab *fsm.Table) { info, _ = tab.Get("k") })
	if info.Owner != "a" || info.Token != 1 || info.Waiters != 1 {
		t.Fatalf("restored lock = %+v", info)
	}
	if restored != 2 {
		t.Fatalf("restore hook got index %d, want 2", restored)
	}
	if g.Applied() != 2 || g.Now() != 11 {
		t.Fatalf("restored applied %d now %d", g.Applied(), g.Now())
	}

	bad := sink{failWrite: true}
	if err := snap.Persist(&bad); err == nil || !bad.cancelled {
		t.Fatalf("failed persist: err=%v cancelled=%v", err, bad.cancelled)
	}
	if err := g.Restore(io.NopCloser(strings.NewReader("nonsense"))); err == nil {
		t.Fatal("restored garbage")
	}
}

// Release drops the snapshot's copy of the table and tells the hook its
// size, so the node can hand the memory back; so does a restore.
func TestSnapshotReleaseHook(t *testing.T) {
	var released []int
	f := New(fsm.DefaultConfig(), Hooks{SnapshotReleased: func(size int) { released = append(released, size) }})
	f.Apply(entry(1, fsm.Command{Op: fsm.OpAcquire, Time: 10, Keys: []string{"k"}, Owner: "a"}))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	size := len(snap.(*snapshot).data)
	snap.Release()
	if len(released) != 1 || released[0] != size || size == 0 || snap.(*snapshot).data != nil {
		t.Fatalf("released %v for a snapshot of %d bytes; data kept: %v", released, size, snap.(*snapshot).data != nil)
	}
	// A restore lets go of the snapshot's bytes too.
	var s sink
	snap, _ = f.Snapshot()
	if err := snap.Persist(&s); err != nil {
		t.Fatal(err)
	}
	released = nil
	if err := f.Restore(io.NopCloser(bytes.NewReader(s.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if len(released) != 1 || released[0] != s.Len() {
		t.Fatalf("restore of %d bytes released %v", s.Len(), released)
	}
}

// An entry of a version above what this build supports stops the node
// through the Fatal hook, with a message naming the index, the entry's
// version and this build's, and nothing of it is applied.
func TestApplyStopsOnNewerVersion(t *testing.T) {
	var got error
	stop := errors.New("stopped")
	f := New(fsm.DefaultConfig(), Hooks{Fatal: func(err error) { got = err; panic(stop) }})
	data := (&fsm.Command{Op: fsm.OpTick}).Encode(nil)
	data[0] = byte(fsm.SupportedVersion + 1)
	func() {
		defer func() {
			if r := recover(); r != stop {
				t.Fatalf("recovered %v, want the hook's stop", r)
			}
		}()
		f.Apply(&raft.Log{Index: 12, Term: 3, Type: raft.LogCommand, Data: data})
	}()
	if got == nil || !errors.Is(got, fsm.ErrUnsupportedVersion) {
		t.Fatalf("Fatal got %v", got)
	}
	for _, want := range []string{"index 12", "version 3", "up to 2"} {
		if !strings.Contains(got.Error(), want) {
			t.Fatalf("message %q does not say %q", got, want)
		}
	}
	if f.Applied() != 0 {
		t.Fatalf("applied index moved to %d", f.Applied())
	}
}
