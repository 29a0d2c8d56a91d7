package workload

import (
	"testing"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// The fault suite's resource follows the modes' fencing rule: readers in
// any token order, a writer only at or above every token seen, readers
// refused below the writer's, semaphore holders per slot.
func TestWriteHold(t *testing.T) {
	f := NewFenced()
	steps := []struct {
		key, mode string
		token     uint64
		slots     []uint32
		want      bool
	}{
		{"rw", history.ModeShared, 6, nil, true},
		{"rw", history.ModeShared, 5, nil, true}, // a reader granted earlier, still current
		{"rw", history.ModeExclusive, 5, nil, false},
		{"rw", history.ModeExclusive, 9, nil, true},
		{"rw", history.ModeShared, 6, nil, false}, // a reader from before the writer
		{"rw", history.ModeShared, 12, nil, true},
		{"rw", history.ModeExclusive, 10, nil, false}, // a reader at 12 was accepted
		{"s", history.ModeSemaphore, 7, []uint32{0}, true},
		{"s", history.ModeSemaphore, 5, []uint32{1}, true}, // another slot
		{"s", history.ModeSemaphore, 11, []uint32{0}, true},
		{"s", history.ModeSemaphore, 7, []uint32{0}, false}, // slot 0 went to 11
		{"s", history.ModeSemaphore, 5, []uint32{1}, true},
		{"s", history.ModeSemaphore, 5, []uint32{0, 1}, false},
	}
	for i, s := range steps {
		if got := f.WriteHold(s.key, s.mode, s.token, s.slots); got != s.want {
			t.Fatalf("step %d %+v: accepted %v", i, s, got)
		}
	}
	if !HasModes("k001-sem") || !HasModes("k001-rw") || HasModes("k001-a") {
		t.Fatal("HasModes")
	}
}
