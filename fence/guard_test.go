package fence_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/raftlock/raftlock/fence"
)

// The rule is "not lower": an equal token (a re-entrant holder) passes, a
// higher one passes and becomes the bar, a lower one is refused and its
// write does not run; 0 is refused as missing. Resources are independent.
func TestGuardNotLower(t *testing.T) {
	var g fence.Guard
	ran := 0
	write := func() error { ran++; return nil }
	steps := []struct {
		res   string
		token uint64
		want  error
	}{
		{"a", 5, nil},
		{"a", 5, nil}, // re-entrant: same token again
		{"a", 7, nil},
		{"a", 5, fence.ErrFenced},
		{"a", 6, fence.ErrFenced},
		{"a", 7, nil},
		{"b", 1, nil}, // another resource has its own bar
		{"a", 0, fence.ErrNoToken},
	}
	want := 0
	for i, s := range steps {
		err := g.Do(s.res, s.token, write)
		if !errors.Is(err, s.want) || (s.want == nil && err != nil) {
			t.Fatalf("step %d: Do(%q, %d) = %v, want %v", i, s.res, s.token, err, s.want)
		}
		if s.want == nil {
			want++
		}
		if ran != want {
			t.Fatalf("step %d: %d writes ran, want %d", i, ran, want)
		}
	}
	if h := g.Highest("a"); h != 7 {
		t.Fatalf("Highest(a) = %d, want 7", h)
	}
	if err := g.Check("a", 3); !errors.Is(err, fence.ErrFenced) {
		t.Fatalf("Check(a, 3) = %v", err)
	}
	g.Forget("a")
	if h := g.Highest("a"); h != 0 {
		t.Fatalf("after Forget, Highest(a) = %d", h)
	}
	if h := g.Highest("never-seen"); h != 0 {
		t.Fatalf("Highest(never-seen) = %d", h)
	}
}

// Under concurrent writers with random-order tokens, every accepted write
// carries a token not lower than every write accepted before it (the
// check and the write are one step), and the highest token is accepted.
func TestGuardConcurrent(t *testing.T) {
	var g fence.Guard
	var mu sync.Mutex
	var accepted []uint64
	var refused atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				token := uint64((i*8+w)*7919%1600 + 1)
				err := g.Do("stock", token, func() error {
					mu.Lock()
					accepted = append(accepted, token)
					mu.Unlock()
					return nil
				})
				if errors.Is(err, fence.ErrFenced) {
					refused.Add(1)
				} else if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i := 1; i < len(accepted); i++ {
		if accepted[i] < accepted[i-1] {
			t.Fatalf("write %d carried token %d after %d had been accepted", i, accepted[i], accepted[i-1])
		}
	}
	if g.Highest("stock") != 1600 || accepted[len(accepted)-1] != 1600 {
		t.Fatalf("highest = %d, last accepted %d; want 1600", g.Highest("stock"), accepted[len(accepted)-1])
	}
	if refused.Load() == 0 {
		t.Fatal("no write was refused: the tokens did not interleave")
	}
}
