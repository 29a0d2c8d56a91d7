package checker

import (
	"slices"
	"strings"
)

// Given is an acquire whose caller gave up on purpose (the abandoning
// clients: a deadline of 1-5 ms, or a disconnect 1-5 ms after sending) and
// got no grant back.
type Given struct {
	Key, Owner string
	// How is "deadline" or "disconnect".
	How string
	// Fault, when set, says why the cluster could not tell whether this
	// caller was still there when its grant was answered, so a key it holds
	// at the end is counted, not judged: "killed" (the node that took the
	// call was killed after it: a node that restarts withdraws its previous
	// run's waiters, but a grant made while it was down may have been
	// delivered, as far as the cluster can tell, and lasts until it
	// expires), "paused" (that node was stopped while the waiter lived: when
	// it resumes, the grant and the caller's disconnect race), "cut off"
	// (the client was cut off the nodes while the waiter lived: its
	// disconnect, or its deadline's end, may never have reached the node).
	Fault string
}

// Abandoned checks DESIGN.md section 8 (7): a waiting acquire whose caller
// is gone is withdrawn, or released if it was granted meanwhile, so no key
// ends up held by an owner whose every acquire was abandoned. final is
// each abandon key's holder after the run (read once the faults healed and
// the abandons had time to land; "" for a free key); an owner of given
// found there is a violation.
func Abandoned(given []Given, final map[string]string) Result {
	r := newReport("abandoned")
	gone := make(map[string]bool, len(given))
	fault := make(map[string]string)
	for _, g := range given {
		gone[g.Owner] = true
		fault[g.Owner] = g.Fault
		r.stats["abandoned"]++
		r.stats["by_"+g.How]++
		if g.Fault != "" {
			r.stats["under_a_fault"]++
		}
	}
	keys := make([]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.stats["keys"]++
		switch owner := final[k]; {
		case gone[owner] && fault[owner] != "":
			r.stats["held_after_"+strings.ReplaceAll(fault[owner], " ", "_")]++
		case gone[owner]:
			r.problemf("key %s is held by %s, whose every acquire was abandoned", k, owner)
		}
	}
	if len(given) > 0 && len(final) == 0 {
		r.problemf("%d acquires were abandoned but no key was read at the end", len(given))
	}
	return r.result()
}
