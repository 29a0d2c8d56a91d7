package fsm

import (
	"container/list"
	"fmt"
	"testing"
)

// TestLongestQueues protects the busiest-keys metric: the n longest queues,
// longest first, ties in key order, empty queues left out.
func TestLongestQueues(t *testing.T) {
	tb := &Table{queues: map[string]*list.List{}}
	for i, depth := range []int{3, 0, 5, 1, 5, 2} {
		q := list.New()
		for range depth {
			q.PushBack(&waiter{})
		}
		tb.queues[fmt.Sprintf("k%d", i)] = q
	}
	got := tb.LongestQueues(3)
	want := []QueueDepth{{"k2", 5}, {"k4", 5}, {"k0", 3}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("LongestQueues(3) = %v, want %v", got, want)
	}
	if got := tb.LongestQueues(10); len(got) != 5 {
		t.Fatalf("LongestQueues(10) = %v, want the 5 non-empty queues", got)
	}
	if got := tb.LongestQueues(0); got != nil {
		t.Fatalf("LongestQueues(0) = %v, want nil", got)
	}
}
