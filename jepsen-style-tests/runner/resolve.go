package runner

import (
	"fmt"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// resolve settles the outcome of operations whose clients gave up, from
// what the replicas committed (their journals): the operation's request id
// in the log says whether, and with what result, it took effect. An id the
// log never saw did not take effect.
func resolve(ops []history.Op, journals map[string][]history.Entry) (resolved, stillUnknown int) {
	type fate struct {
		code     string
		tokens   []uint64
		released bool
		seen     bool
		// undone: the acquire was granted, and later released by the
		// cluster because its caller had gone (an abandon: the request's
		// outcome turns cancelled). It held its keys for a while that the
		// client never learned of, so its outcome stays unknown: the
		// checkers then allow both.
		undone bool
	}
	fates := map[string]*fate{}
	get := func(rid string) *fate {
		f := fates[rid]
		if f == nil {
			f = &fate{}
			fates[rid] = f
		}
		return f
	}
	for _, j := range journals {
		for _, e := range j {
			if e.IsRestore() {
				continue
			}
			if e.RequestID != "" && !e.Duplicate {
				switch e.Op {
				case "acquire", "release", "refresh":
					f := get(e.RequestID)
					f.seen = true
					switch {
					case f.code == "" || f.code == "pending":
						f.code, f.tokens, f.released = e.Code, e.Tokens, e.Released
					case f.code == "ok" && e.Op == "acquire" && e.Code == "cancelled":
						f.undone = true
					}
				case "cancel_wait":
					f := get(e.RequestID)
					f.seen = true
					if f.code == "" || f.code == "pending" {
						f.code = e.Code // a tombstone, or the waiter withdrawn
					}
				}
			}
			for _, ev := range e.Events {
				f := get(ev.RequestID)
				f.seen = true
				if f.code == "ok" && ev.Code == "cancelled" {
					f.undone = true
					continue
				}
				f.code, f.tokens = ev.Code, ev.Tokens
			}
		}
	}
	for i := range ops {
		op := &ops[i]
		if op.RequestID == "" {
			continue
		}
		f := fates[op.RequestID]
		undone := f != nil && f.undone
		// The client re-issues a withdrawn acquire as id#1, id#2, ...: the
		// last one the log saw is the one that counts.
		for n := 1; op.Kind == history.KindAcquire; n++ {
			g := fates[fmt.Sprintf("%s#%d", op.RequestID, n)]
			if g == nil {
				break
			}
			f = g
			undone = undone || g.undone
		}
		if op.Outcome == history.OutcomeFail && op.Kind == history.KindAcquire && undone {
			// The client was told no (its answer was lost, the retry found
			// the request cancelled, and the wait had ended), but the
			// cluster had granted it and released it again: it held its
			// keys for a while, so either outcome is possible.
			op.Outcome = history.OutcomeUnknown
			stillUnknown++
			continue
		}
		if op.Outcome != history.OutcomeUnknown {
			continue
		}
		switch {
		case f == nil || !f.seen:
			op.Outcome = history.OutcomeFail // never applied
		case f.code == "pending", f.undone:
			stillUnknown++
			continue
		case f.code == "ok" && op.Kind == history.KindAcquire:
			op.Outcome, op.Token = history.OutcomeOK, history.MaxToken(f.tokens)
		case f.code == "ok" && op.Kind == history.KindRelease:
			op.Outcome, op.Released = history.OutcomeOK, f.released
		case f.code == "ok":
			op.Outcome = history.OutcomeOK
		default: // busy, timed_out, cancelled, not_held, invalid: no effect
			op.Outcome = history.OutcomeFail
		}
		op.Resolved = true
		resolved++
	}
	return resolved, stillUnknown
}
