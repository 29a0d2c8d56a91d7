package workload

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// Keys with modes: a key whose name ends in SemaphoreSuffix is a semaphore
// of SemaphoreLimit permits (clients take one, sometimes two); one ending
// in ReadWriteSuffix is a read-write lock (clients take it shared two times
// in three, exclusive otherwise). Every other key is a plain exclusive lock.
const (
	SemaphoreSuffix = "-sem"
	ReadWriteSuffix = "-rw"
	SemaphoreLimit  = 2
)

// HasModes reports whether key is a semaphore or read-write key.
func HasModes(key string) bool {
	return strings.HasSuffix(key, SemaphoreSuffix) || strings.HasSuffix(key, ReadWriteSuffix)
}

// modeOptions draws the mode of an acquire of acq.Key, records it on acq
// and returns the lock options that ask for it.
func modeOptions(acq *history.Op, rng *rand.Rand) []client.LockOption {
	switch {
	case strings.HasSuffix(acq.Key, SemaphoreSuffix):
		permits := 1
		if rng.IntN(4) == 0 {
			permits = 2
		}
		acq.Mode, acq.Limit = history.ModeSemaphore, SemaphoreLimit
		return []client.LockOption{client.WithSemaphore(SemaphoreLimit, permits)}
	case strings.HasSuffix(acq.Key, ReadWriteSuffix):
		if rng.IntN(3) == 0 {
			acq.Mode = history.ModeExclusive
			return nil
		}
		acq.Mode = history.ModeShared
		return []client.LockOption{client.WithShared()}
	}
	return nil
}

// RecoveryOptions are the options that acquire key whole at the end of a
// run: a semaphore with all its permits (so every earlier hold must be
// gone), any other key exclusively.
func RecoveryOptions(key string) []client.LockOption {
	if strings.HasSuffix(key, SemaphoreSuffix) {
		return []client.LockOption{client.WithSemaphore(SemaphoreLimit, SemaphoreLimit)}
	}
	return nil
}

// modeFence is the fencing rule of shared and semaphore holds
// (fsm/DESIGN.md, "Modes"), per key: W, the highest token of an accepted
// exclusive write; A, the highest token of any accepted write; S, per
// slot, the highest token accepted under it. An exclusive write is
// accepted iff token >= A, a shared one iff token >= W, a semaphore one iff
// token >= W and >= S of each of its slots.
type modeFence struct {
	w, a map[string]uint64
	s    map[string]uint64 // key/slot
}

func newModeFence() modeFence {
	return modeFence{w: map[string]uint64{}, a: map[string]uint64{}, s: map[string]uint64{}}
}

// WriteHold accepts or rejects a write under a hold of the given mode
// (history.ModeShared, ModeExclusive or ModeSemaphore) with its token and,
// for a semaphore, its slots.
func (f *Fenced) WriteHold(key, mode string, token uint64, slots []uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.modes
	slot := func(s uint32) string { return fmt.Sprintf("%s/%d", key, s) }
	switch mode {
	case history.ModeExclusive:
		if token < m.a[key] {
			return false
		}
		m.w[key] = token
	case history.ModeShared:
		if token < m.w[key] {
			return false
		}
	case history.ModeSemaphore:
		if token < m.w[key] || slices.ContainsFunc(slots, func(s uint32) bool { return token < m.s[slot(s)] }) {
			return false
		}
		for _, s := range slots {
			m.s[slot(s)] = token
		}
	default:
		return false
	}
	m.a[key] = max(m.a[key], token)
	return true
}
