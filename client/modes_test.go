package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// Shared locks: two readers at once, a writer refused while they hold, a
// Lock that reports its mode, and Get listing the holders.
func TestSharedLocks(t *testing.T) {
	cl := clustertest.New(t, 3)
	cl.WaitForVersion(2)
	ctx := testCtx(t)
	c := newClient(t, cl.Addrs())
	r1, err := c.Acquire(ctx, []string{"stock"}, client.WithShared(), client.WithOwner("report-1"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Acquire(ctx, []string{"stock"}, client.WithShared(), client.WithOwner("report-2"))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Mode() != client.Shared || r1.Slots() != nil {
		t.Fatalf("lock reports mode %s slots %v", r1.Mode(), r1.Slots())
	}
	if _, err := c.Acquire(ctx, []string{"stock"}, client.WithOwner("recount")); !errors.Is(err, client.ErrLockHeld) {
		t.Fatalf("writer beside readers: %v, want ErrLockHeld", err)
	}
	li, err := c.Get(ctx, "stock")
	if err != nil || li.Mode != client.Shared || len(li.Holders) != 2 {
		t.Fatalf("Get: %+v, %v", li, err)
	}
	if _, err := c.Acquire(ctx, []string{"stock"}, client.WithShared()); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("anonymous shared lock: %v, want ErrInvalidArgument", err)
	}
	_ = r1.Release(ctx)
	_ = r2.Release(ctx)
	w, err := c.Acquire(ctx, []string{"stock"}, client.WithOwner("recount"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Token() <= r2.Token() || w.Mode() != client.Exclusive {
		t.Fatalf("writer token %d mode %s after reader token %d", w.Token(), w.Mode(), r2.Token())
	}
}

// A semaphore of limit 2 run through Execute by six callers at once never
// has more than two inside fn, and every holder's slot is below the limit
// and not held by another caller inside at the same time. A lock of
// another limit on the key fails with ErrWrongMode.
func TestSemaphoreExecuteBound(t *testing.T) {
	cl := clustertest.New(t, 3)
	cl.WaitForVersion(2)
	ctx := testCtx(t)
	c := newClient(t, cl.Addrs())
	var inside, most atomic.Int32
	var mu sync.Mutex
	busySlots := map[uint32]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Execute(ctx, []string{"imports"}, func(ctx context.Context) error {
				l, _ := client.LockFromContext(ctx)
				slot := l.Slots()["imports"]
				if len(slot) != 1 || slot[0] >= 2 {
					return fmt.Errorf("caller %d: slots %v", i, slot)
				}
				mu.Lock()
				if busySlots[slot[0]] {
					mu.Unlock()
					return fmt.Errorf("caller %d: slot %d is held by another caller inside", i, slot[0])
				}
				busySlots[slot[0]] = true
				mu.Unlock()
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(50 * time.Millisecond) // the work the semaphore bounds
				inside.Add(-1)
				mu.Lock()
				delete(busySlots, slot[0])
				mu.Unlock()
				return nil
			}, client.WithSemaphore(2, 1), client.WithWait(30*time.Second))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m := most.Load(); m < 1 || m > 2 {
		t.Fatalf("at most %d callers inside at once, want 1 or 2", m)
	}
	held, err := c.Acquire(ctx, []string{"imports"}, client.WithSemaphore(2, 2), client.WithOwner("all"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(held.Slots()["imports"], []uint32{0, 1}) || held.Limit() != 2 {
		t.Fatalf("slots %v limit %d", held.Slots(), held.Limit())
	}
	_, err = c.Acquire(ctx, []string{"imports"}, client.WithSemaphore(3, 1), client.WithOwner("other"))
	if !errors.Is(err, client.ErrWrongMode) {
		t.Fatalf("another limit: %v, want ErrWrongMode", err)
	}
}
