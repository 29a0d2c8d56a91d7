package checker

import (
	"slices"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// WellFormed checks that the recorder kept the contract the other checkers
// rely on; when it fails, their verdicts mean little:
//   - every op passes history.Op.Validate, and ids are unique;
//   - a client does one op at a time (an op is invoked no earlier than the
//     return, or give-up time, of the client's previous op);
//   - request ids are unique per op, and owners unique per acquire;
//   - an acquire the client saw succeed on an expiring lock carries the
//     client's conservative deadline;
//   - a write is invoked while its client believed it held the key with that
//     token (the workload writes only then).
func WellFormed(ops []history.Op) Result {
	rep := newReport("well-formed")
	rep.stats["ops"] = len(ops)
	ids := make(map[int]bool, len(ops))
	rids := make(map[string]int)
	owners := make(map[string]int)
	byClient := make(map[int][]*history.Op)
	for i := range ops {
		op := &ops[i]
		rep.stats[string(op.Kind)+"_"+string(op.Outcome)]++
		if op.Resolved {
			rep.stats["resolved"]++
		}
		if err := op.Validate(); err != nil {
			rep.problemf("%v", err)
		}
		if ids[op.ID] {
			rep.problemf("op id %d is used twice", op.ID)
		}
		ids[op.ID] = true
		if op.RequestID != "" {
			if other, ok := rids[op.RequestID]; ok {
				rep.problemf("request id %s is used by op %d and op %d", op.RequestID, other, op.ID)
			}
			rids[op.RequestID] = op.ID
		}
		if op.Kind == history.KindAcquire {
			if other, ok := owners[op.Owner]; ok {
				rep.problemf("owner %q is used by acquire op %d and acquire op %d (owners must be unique per acquire)", op.Owner, other, op.ID)
			}
			owners[op.Owner] = op.ID
			if op.SeenOK() && op.Expire > 0 && op.Deadline == 0 {
				rep.problemf("acquire op %d succeeded on a lock that expires but has no deadline", op.ID)
			}
		}
		byClient[op.Client] = append(byClient[op.Client], op)
	}
	for _, c := range sortedInts(byClient) {
		list := byClient[c]
		slices.SortFunc(list, func(a, b *history.Op) int { return cmpInt64(a.Invoke, b.Invoke) })
		for i := 1; i < len(list); i++ {
			if prev := list[i-1]; list[i].Invoke < prev.Return {
				rep.problemf("client %d invoked op %d at %s before its op %d returned at %s (one op at a time)",
					c, list[i].ID, history.FormatTime(list[i].Invoke), prev.ID, history.FormatTime(prev.Return))
			}
		}
	}
	checkWritesHeld(rep, ops)
	return rep.result()
}

// checkWritesHeld reports writes invoked outside the writer's holding.
func checkWritesHeld(rep *report, ops []history.Op) {
	hs, _ := holdings(ops)
	type ck struct {
		client int
		key    string
		token  uint64
	}
	byCK := make(map[ck][]holding)
	for _, h := range hs {
		k := ck{h.client, h.key, h.token}
		byCK[k] = append(byCK[k], h)
	}
	for i := range ops {
		w := &ops[i]
		if w.Kind != history.KindWrite {
			continue
		}
		inside := slices.ContainsFunc(byCK[ck{w.Client, w.Key, w.Token}], func(h holding) bool {
			return (w.Owner == "" || w.Owner == h.owner) && w.Invoke >= h.start && w.Invoke < h.end
		})
		if !inside {
			rep.problemf("write op %d (client %d, key %q, token %d) was invoked at %s outside any holding of that client with that token",
				w.ID, w.Client, w.Key, w.Token, history.FormatTime(w.Invoke))
		}
	}
}

func sortedInts[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
