package checker

import (
	"fmt"
	"slices"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// Converged checks DESIGN.md section 8, promise 5: all journals agree entry
// by entry on every index they share, and a node that applied an index more
// than once (entries after its last snapshot are applied again after a
// restart) wrote the same line each time. Every field of an applied entry is
// compared (index, cluster time, op, request id, code, keys, owner, tokens,
// released, count, duplicate, expired, events): the state machine is
// deterministic, so replicas must agree on all of them. Restore markers are
// node-local and not compared.
//
// Indexes a node never applied (Raft entries that are not commands, entries
// skipped through a snapshot, a node that stopped early) are not compared;
// Durable checks that acknowledged operations are everywhere.
func Converged(journals map[string][]history.Entry) Result {
	rep := newReport("converged")
	type first struct {
		node  string
		entry history.Entry
	}
	ref := make(map[uint64]first) // the first node's view of each index
	shared := make(map[uint64]int)
	for _, node := range sortedNodes(journals) {
		rep.stats["journals"]++
		own := make(map[uint64]history.Entry)
		for _, e := range journals[node] {
			if e.IsRestore() {
				rep.stats["restores"]++
				continue
			}
			if prev, ok := own[e.Index]; ok {
				rep.stats["repeated_lines"]++
				if d := entryDiff(&prev, &e); d != "" {
					rep.problemf("node %s: applied index %d twice with different results: %s", node, e.Index, d)
				}
				continue
			}
			own[e.Index] = e
		}
		for _, i := range sortedIndexes(own) {
			e := own[i]
			r, ok := ref[i]
			if !ok {
				ref[i] = first{node, e}
				continue
			}
			shared[i]++
			rep.stats["compared"]++
			if d := entryDiff(&r.entry, &e); d != "" {
				rep.problemf("index %d: nodes %s and %s disagree: %s", i, r.node, node, d)
			}
		}
	}
	rep.stats["indexes"] = len(ref)
	rep.stats["shared_indexes"] = len(shared)
	return rep.result()
}

func sortedIndexes(m map[uint64]history.Entry) []uint64 {
	out := make([]uint64, 0, len(m))
	for i := range m {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// entryDiff names the first field in which a and b differ, as
// "field: a vs b", or returns "" if they are equal. Nil and empty slices are
// equal (JSON omits both).
func entryDiff(a, b *history.Entry) string {
	d := func(field string, x, y any) string { return fmt.Sprintf("%s: %v vs %v", field, x, y) }
	switch {
	case a.Index != b.Index:
		return d("index", a.Index, b.Index)
	case a.Time != b.Time:
		return d("cluster time", a.Time, b.Time)
	case a.Op != b.Op:
		return d("op", a.Op, b.Op)
	case a.RequestID != b.RequestID:
		return d("rid", a.RequestID, b.RequestID)
	case a.Code != b.Code:
		return d("code", a.Code, b.Code)
	case !slices.Equal(a.Keys, b.Keys):
		return d("keys", a.Keys, b.Keys)
	case a.Owner != b.Owner:
		return d("owner", a.Owner, b.Owner)
	case !slices.Equal(a.Tokens, b.Tokens):
		return d("tokens", a.Tokens, b.Tokens)
	case a.Released != b.Released:
		return d("released", a.Released, b.Released)
	case a.Count != b.Count:
		return d("count", a.Count, b.Count)
	case a.Duplicate != b.Duplicate:
		return d("dup", a.Duplicate, b.Duplicate)
	case a.Expired != b.Expired:
		return d("expired", a.Expired, b.Expired)
	case a.Restore != b.Restore:
		return d("restore", a.Restore, b.Restore)
	case len(a.Events) != len(b.Events):
		return d("events", fmt.Sprintf("%d events", len(a.Events)), fmt.Sprintf("%d events", len(b.Events)))
	}
	for i := range a.Events {
		x, y := &a.Events[i], &b.Events[i]
		if x.RequestID != y.RequestID || x.Code != y.Code || x.Owner != y.Owner ||
			!slices.Equal(x.Keys, y.Keys) || !slices.Equal(x.Tokens, y.Tokens) {
			return d(fmt.Sprintf("events[%d]", i), *x, *y)
		}
	}
	return ""
}
