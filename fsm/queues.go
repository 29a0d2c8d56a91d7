package fsm

import "sort"

// QueueDepth is the length of one key's queue.
type QueueDepth struct {
	Key   string
	Depth int
}

// LongestQueues returns the n longest queues, longest first (ties in key
// order). It walks every key that has waiters: O(queued keys · log n).
func (t *Table) LongestQueues(n int) []QueueDepth {
	if n <= 0 {
		return nil
	}
	top := make([]QueueDepth, 0, n+1)
	less := func(a, b QueueDepth) bool { // a ranks before b
		if a.Depth != b.Depth {
			return a.Depth > b.Depth
		}
		return a.Key < b.Key
	}
	for k, q := range t.queues {
		d := QueueDepth{Key: k, Depth: q.Len()}
		if d.Depth == 0 || (len(top) == n && !less(d, top[n-1])) {
			continue
		}
		i := sort.Search(len(top), func(i int) bool { return less(d, top[i]) })
		top = append(top, QueueDepth{})
		copy(top[i+1:], top[i:])
		top[i] = d
		if len(top) > n {
			top = top[:n]
		}
	}
	return top
}
