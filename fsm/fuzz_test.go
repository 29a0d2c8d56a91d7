package fsm

import (
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"slices"
	"testing"
	"time"
)

func seedCommands() []Command {
	return []Command{
		{Op: OpTick, Time: 1},
		{Op: OpAcquire, Time: 2, Keys: []string{"a", "b"}, Owner: "o", Expire: time.Second, Wait: time.Second, RequestID: "r"},
		{Op: OpRelease, Keys: []string{"a"}, Owner: "o", HasToken: true, Token: 7, RequestID: "r2"},
		{Op: OpReleaseAll, Owner: "o"},
		{Op: OpRefresh, Keys: []string{"a"}, Owner: "o", Expire: time.Minute},
		{Op: OpCancelWait, RequestID: "r"},
		{Op: OpForceRelease, Keys: []string{"x"}},
		{Op: OpAcquire, Keys: []string{"a"}, Owner: "o", Wait: time.Second, RequestID: "r3", Attempt: 5},
		{Op: OpAbandon, RequestID: "r3", Attempt: 5},
		{Op: OpSetVersion, ClusterVersion: Version2},
		{Op: OpCancelWait, RequestID: "r", Keys: []string{"a/"}},
	}
}

// resultMarker starts the fuzz inputs that go to DecodeResult.
const resultMarker = "RLRS"

// FuzzDecode attacks both decoders of the package. Inputs starting with
// "RLSN" go to the snapshot decoder (fuzzRestore). All others go to the
// command decoder: it must never panic; whatever it accepts must re-encode to
// a command that decodes the same; and applying it to a table with locks and
// waiters must keep the table's invariants. One target, so that
// go test -fuzz=Fuzz ./fsm/ selects it.
func FuzzDecode(f *testing.F) {
	for _, c := range seedCommands() {
		f.Add(c.Encode(nil))
	}
	h := newHarness(f)
	h.apply(Command{Op: OpAcquire, Keys: []string{"a", "b"}, Owner: "o", Expire: time.Second, RequestID: "g"})
	h.acquireWait("w", "p", 0, time.Minute, "b", "c")
	snap := h.tab.AppendSnapshot(nil)
	f.Add(snap[:len(snap)-4])
	// A version 2 table with shared and semaphore holds and waiters.
	m := newHarness(f)
	m.apply(Command{Op: OpSetVersion, ClusterVersion: Version2})
	m.apply(shared("r1", "a"))
	m.apply(shared("r2", "a"))
	m.apply(waiting(exclusive("w", "a"), "wa"))
	m.apply(sem("s1", 3, 2, "s"))
	m.apply(waiting(sem("s2", 3, 2, "s"), "ws"))
	snap = m.tab.AppendSnapshot(nil)
	f.Add(snap[:len(snap)-4])
	for _, c := range []Command{shared("o", "a"), sem("o", 3, 1, "s"), waiting(sem("p", 3, 3, "s"), "x")} {
		f.Add(c.Encode(nil))
	}
	res := Result{Op: OpAcquire, Code: CodeOK, Keys: []string{"a"}, Tokens: []uint64{3}, Deadlines: []int64{9}, Events: []Result{{Code: CodeTimedOut}}}
	rb, _ := res.AppendBinary([]byte(resultMarker))
	f.Add(rb)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 4 && string(b[:4]) == snapshotMagic {
			fuzzRestore(b)
			return
		}
		if len(b) >= 4 && string(b[:4]) == resultMarker {
			r, err := DecodeResult(b[4:])
			if err != nil {
				return
			}
			again, _ := r.AppendBinary(nil)
			if r2, err := DecodeResult(again); err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("re-encoded result differs: %+v -> %+v (%v)", r, r2, err)
			}
			return
		}
		c, err := Decode(b)
		if err != nil {
			return
		}
		c2, err := Decode(c.Encode(nil))
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the command: %+v -> %+v", c, c2)
		}
		h := newHarness(t)
		if c.Version() >= Version2 {
			h.apply(Command{Op: OpSetVersion, ClusterVersion: Version2})
			h.apply(sem("o", 3, 1, "s"))
			h.apply(shared("o", "r"))
		}
		h.acquire("o", "a")
		h.acquireWait("r", "p", time.Second, time.Minute, "a", "b")
		h.index++
		h.tab.Apply(h.index, c)
		if err := h.tab.checkInvariants(); err != nil {
			t.Fatalf("after %+v: %v", c, err)
		}
	})
}

// fuzzRestore feeds an arbitrary snapshot body (with a valid checksum, so
// the fuzzer reaches the decoder) to Restore: it must never panic, and a
// table it accepts must apply commands without panicking.
func fuzzRestore(body []byte) {
	b := binary.BigEndian.AppendUint32(slices.Clone(body), crc32.ChecksumIEEE(body))
	tab, err := Restore(DefaultConfig(), b)
	if err != nil {
		return
	}
	tab.Apply(tab.Index()+1, &Command{Op: OpTick, Time: tab.Now() + int64(time.Hour)})
	tab.Apply(tab.Index()+1, &Command{Op: OpReleaseAll, Owner: "o"})
}
