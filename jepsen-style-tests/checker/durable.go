package checker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// record is what one journal line (or one event of it) says about a
// request id.
type record struct {
	index    uint64
	op       string
	code     string
	tokens   []uint64
	released bool
	event    bool
	dup      bool
}

func (r record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "index %d: ", r.index)
	if r.event {
		b.WriteString("hand-off event ")
	} else {
		b.WriteString(r.op + " ")
	}
	b.WriteString(r.code)
	if len(r.tokens) > 0 {
		fmt.Fprintf(&b, " tokens %v", r.tokens)
	}
	if r.op == history.EntryRelease && !r.event {
		fmt.Fprintf(&b, " released=%t", r.released)
	}
	if r.dup {
		b.WriteString(" (dup)")
	}
	return b.String()
}

// nodeRecords indexes one node's journal by request id.
type nodeRecords struct {
	byRID    map[string][]record
	restored uint64 // highest index skipped through a snapshot restore
	last     uint64 // highest index applied
}

func indexJournal(journal []history.Entry) *nodeRecords {
	nr := &nodeRecords{byRID: make(map[string][]record), restored: history.RestoredUpTo(journal)}
	for _, e := range history.Applied(journal) {
		nr.last = max(nr.last, e.Index)
		if e.RequestID != "" {
			nr.byRID[e.RequestID] = append(nr.byRID[e.RequestID], record{
				index: e.Index, op: e.Op, code: e.Code, tokens: e.Tokens, released: e.Released, dup: e.Duplicate,
			})
		}
		for _, ev := range e.Events {
			if ev.RequestID != "" {
				nr.byRID[ev.RequestID] = append(nr.byRID[ev.RequestID], record{
					index: e.Index, op: history.EntryAcquire, code: ev.Code, tokens: ev.Tokens, event: true,
				})
			}
		}
	}
	return nr
}

// verdict says whether a record shows the operation's acknowledged result
// (match), contradicts it, or says nothing about it.
type verdict int

const (
	silent verdict = iota
	match
	contradicts
)

func judge(op *history.Op, r record) verdict {
	switch op.Kind {
	case history.KindAcquire:
		// A cancel_wait on a request reports that request's result.
		if !r.event && r.op != history.EntryAcquire && r.op != history.EntryCancelWait {
			return silent
		}
		switch r.code {
		case history.CodeOK:
			if op.Token == 0 || history.MaxToken(r.tokens) == op.Token {
				return match
			}
			return contradicts
		case history.CodeBusy, history.CodeTimedOut, history.CodeCancelled, history.CodeNotHeld:
			return contradicts
		}
	case history.KindRelease:
		if r.event || r.op != history.EntryRelease {
			return silent
		}
		switch r.code {
		case history.CodeOK:
			if r.released == op.Released {
				return match
			}
			return contradicts
		case history.CodeNotHeld:
			return contradicts
		}
	case history.KindRefresh:
		if r.event || r.op != history.EntryRefresh {
			return silent
		}
		switch r.code {
		case history.CodeOK:
			if op.Token == 0 || len(r.tokens) == 0 || history.MaxToken(r.tokens) == op.Token {
				return match
			}
			return contradicts
		case history.CodeNotHeld:
			return contradicts
		}
	}
	return silent
}

// Durable checks DESIGN.md section 8, promise 4: every acknowledged acquire,
// release and refresh (Outcome ok, seen by the client or resolved later)
// that carries a request id is in the journal of every node with the result
// the client was given: an acquire as a direct grant or a hand-off event
// with that request id and token, a release with the same released flag, a
// refresh with code ok. A node may lack it only if its journal says it
// skipped that index through a snapshot restore; then at least one journal
// must have it. A journal line with that request id that says otherwise
// (busy, timed out, cancelled, not held, another token or released flag) is
// a violation on its own.
//
// Journals must be collected after every node caught up: a node whose
// journal ends before the entry is reported, not excused.
func Durable(ops []history.Op, journals map[string][]history.Entry) Result {
	rep := newReport("durable")
	nodes := sortedNodes(journals)
	idx := make(map[string]*nodeRecords, len(nodes))
	for _, n := range nodes {
		idx[n] = indexJournal(journals[n])
	}
	rep.stats["journals"] = len(nodes)
	for i := range ops {
		op := &ops[i]
		if !op.Acknowledged() || (op.Kind != history.KindAcquire && op.Kind != history.KindRelease && op.Kind != history.KindRefresh) {
			continue
		}
		if op.RequestID == "" {
			rep.stats["no_request_id"]++
			continue
		}
		rep.stats["acknowledged"]++
		origin := uint64(0) // lowest index of a matching record on any node
		has := make(map[string]bool)
		for _, n := range nodes {
			for _, r := range idx[n].byRID[op.RequestID] {
				switch judge(op, r) {
				case match:
					has[n] = true
					if origin == 0 || r.index < origin {
						origin = r.index
					}
				case contradicts:
					rep.problemf("node %s: %s contradicts %s", n, r, describeAcked(op))
				}
			}
		}
		if origin == 0 {
			rep.problemf("%s is in no journal", describeAcked(op))
			continue
		}
		for _, n := range nodes {
			nr := idx[n]
			switch {
			case has[n]:
			case nr.restored >= origin:
				rep.stats["excused_by_restore"]++
			case nr.last < origin:
				rep.problemf("node %s: journal ends at index %d, before %s (index %d on %s); collect journals after every node caught up",
					n, nr.last, describeAcked(op), origin, strings.Join(nodesWith(has), ","))
			default:
				rep.problemf("node %s: lost %s (index %d on %s)", n, describeAcked(op), origin, strings.Join(nodesWith(has), ","))
			}
		}
	}
	return rep.result()
}

func nodesWith(has map[string]bool) []string {
	var out []string
	for n, ok := range has {
		if ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func describeAcked(op *history.Op) string {
	var b strings.Builder
	how := "acknowledged"
	if op.Resolved {
		how = "resolved-ok"
	}
	fmt.Fprintf(&b, "%s %s op %d (client %d, key %q, owner %s, rid %s", how, op.Kind, op.ID, op.Client, op.Key, op.Owner, op.RequestID)
	switch op.Kind {
	case history.KindAcquire:
		fmt.Fprintf(&b, ", token %d", op.Token)
	case history.KindRelease:
		fmt.Fprintf(&b, ", released=%t", op.Released)
	}
	b.WriteString(")")
	return b.String()
}
