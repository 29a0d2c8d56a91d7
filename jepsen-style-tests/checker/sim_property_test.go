package checker

import (
	"slices"
	"testing"
	"time"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// simSeeds are the simulated runs every property is checked on: ordinary
// contention, and one key under heavy loss of answers.
func simSeeds() []simConfig {
	var cfgs []simConfig
	for seed := uint64(1); seed <= 20; seed++ {
		cfgs = append(cfgs, defaultSim(seed))
	}
	for seed := uint64(100); seed < 105; seed++ {
		cfg := defaultSim(seed)
		cfg.keys, cfg.clients, cfg.pUnknown = []string{"a"}, 12, 0.3
		cfgs = append(cfgs, cfg)
	}
	return cfgs
}

// Soundness: no checker reports a violation on histories of a correct
// service, whatever the interleaving, lost answers, late applies, lease
// expiries, hand-offs, snapshot restores and restarts.
func TestCheckersAcceptSimulatedHistories(t *testing.T) {
	for _, cfg := range simSeeds() {
		ops, journals := simulate(cfg)
		for _, r := range []Result{
			WellFormed(ops),
			Linearizable(ops, t.TempDir()),
			MutualExclusion(ops),
			Fencing(ops, journals),
			Durable(ops, journals),
			Converged(journals),
		} {
			if !r.OK {
				t.Fatalf("seed %d: %s", cfg.seed, Summary([]Result{r}))
			}
		}
	}
}

// The simulator must exercise what the checkers claim to handle, or the
// soundness test above proves little.
func TestSimulatorCoverage(t *testing.T) {
	counts := make(map[string]int)
	for _, cfg := range simSeeds() {
		ops, journals := simulate(cfg)
		for _, op := range ops {
			switch {
			case op.Resolved:
				counts["resolved "+string(op.Kind)]++
			case op.Outcome == history.OutcomeUnknown:
				counts["unknown "+string(op.Kind)]++
			}
		}
		for _, e := range journals["n1"] {
			if e.Expired > 0 {
				counts["expiry"]++
			}
			for _, ev := range e.Events {
				counts["event "+ev.Code]++
			}
		}
		r := Linearizable(ops, "")
		counts["unknown kept by the model"] += r.Stats["unknown_kept"]
		counts["restore excuses"] += Durable(ops, journals).Stats["excused_by_restore"]
		counts["repeated lines"] += Converged(journals).Stats["repeated_lines"]
	}
	for _, want := range []string{
		"resolved acquire", "resolved release", "unknown acquire", "unknown release", "unknown refresh", "unknown read",
		"expiry", "event ok", "event timed_out", "unknown kept by the model", "restore excuses", "repeated lines",
	} {
		if counts[want] == 0 {
			t.Errorf("the simulated histories never contain: %s (counts %v)", want, counts)
		}
	}
}

// Completeness on long histories: one corruption of a legal simulated
// history, of the kind each checker exists for, must be caught.
func TestCheckersCatchCorruptedSimulatedHistories(t *testing.T) {
	for _, cfg := range simSeeds()[:10] {
		ops, journals := simulate(cfg)
		t.Run("read of an owner that never acquired", func(t *testing.T) {
			i := slices.IndexFunc(ops, func(op history.Op) bool { return op.Kind == history.KindRead && op.Held && op.Return != 0 })
			bad := slices.Clone(ops)
			bad[i].ReadOwner = "intruder"
			wantFail(t, Linearizable(bad, ""), "not linearizable")
		})
		t.Run("stale read of a superseded holder", func(t *testing.T) {
			bad := slices.Clone(ops)
			r := slices.IndexFunc(bad, func(op history.Op) bool { return op.Kind == history.KindRead && op.Held && op.Outcome == ok })
			a := slices.IndexFunc(bad, func(op history.Op) bool {
				return op.Kind == history.KindAcquire && op.SeenOK() && op.Key == bad[r].Key && op.Token > bad[r].Token
			})
			if a < 0 {
				t.Skipf("seed %d: no later grant", cfg.seed)
			}
			bad[r].Invoke = bad[a].Return + ms(1)
			bad[r].Return = bad[r].Invoke + ms(1)
			wantFail(t, Linearizable(bad, ""), "not linearizable")
		})
		t.Run("intruder holding during a holding", func(t *testing.T) {
			i := slices.IndexFunc(ops, func(op history.Op) bool {
				return op.Kind == history.KindAcquire && op.SeenOK() && op.Deadline > op.Return+ms(20)
			})
			bad := slices.Clone(ops)
			in := ops[i]
			in.ID, in.Client, in.Owner, in.RequestID, in.Token = 1_000_000, 99, "intruder", "intruder", in.Token+100_000
			in.Return += ms(5)
			bad = append(bad, in)
			wantFail(t, MutualExclusion(bad), "owner intruder")
			wantFail(t, Linearizable(bad, ""), "not linearizable")
		})
		t.Run("journal token reused", func(t *testing.T) {
			js := cloneJournals(journals)
			var grants []int
			for i, e := range js["n2"] {
				if e.Op == history.EntryAcquire && e.Code == history.CodeOK && !e.Duplicate && e.Keys[0] == "a" {
					grants = append(grants, i)
				}
			}
			first, last := js["n2"][grants[0]], &js["n2"][grants[len(grants)-1]]
			last.Tokens = slices.Clone(first.Tokens)
			wantFail(t, Fencing(ops, js), "node n2")
			wantFail(t, Converged(js), "tokens")
		})
		t.Run("later acquire without a higher token", func(t *testing.T) {
			bad := slices.Clone(ops)
			for i := range bad {
				a := &bad[i]
				if a.Kind != history.KindAcquire || !a.SeenOK() {
					continue
				}
				j := slices.IndexFunc(bad, func(b history.Op) bool {
					return b.Kind == history.KindAcquire && b.SeenOK() && b.Key == a.Key && b.Invoke > a.Return
				})
				if j >= 0 {
					bad[j].Token = a.Token
					break
				}
			}
			wantFail(t, Fencing(bad, nil), "did not get a higher token")
		})
		t.Run("stale write accepted", func(t *testing.T) {
			bad := slices.Clone(ops)
			var last history.Op
			for _, op := range ops {
				if op.Kind == history.KindWrite && op.Outcome == ok && op.Key == "a" && op.Return > last.Return {
					last = op
				}
			}
			stale := last
			stale.ID, stale.Token = 1_000_001, last.Token-1
			stale.Invoke, stale.Return = last.Return+ms(1), last.Return+ms(2)
			bad = append(bad, stale)
			wantFail(t, Fencing(bad, nil), "accepted stale write")
		})
		t.Run("acknowledged acquire lost everywhere", func(t *testing.T) {
			i := slices.IndexFunc(ops, func(op history.Op) bool { return op.Kind == history.KindAcquire && op.SeenOK() })
			rid := ops[i].RequestID
			js := cloneJournals(journals)
			for n, j := range js {
				j = slices.DeleteFunc(j, func(e history.Entry) bool { return e.RequestID == rid })
				for k := range j {
					j[k].Events = slices.DeleteFunc(slices.Clone(j[k].Events), func(ev history.Event) bool { return ev.RequestID == rid })
				}
				js[n] = j
			}
			wantFail(t, Durable(ops, js), "rid "+rid, "in no journal")
		})
		t.Run("replicas disagree", func(t *testing.T) {
			js := cloneJournals(journals)
			e := &js["n3"][len(js["n3"])-1]
			e.Code = history.CodeInvalid
			wantFail(t, Converged(js), "disagree: code")
		})
	}
}

func cloneJournals(js map[string][]history.Entry) map[string][]history.Entry {
	out := make(map[string][]history.Entry, len(js))
	for n, j := range js {
		out[n] = clone(j)
	}
	return out
}

// A long, busy history checks in well under the default porcupine budget.
func TestLinearizableLongHistory(t *testing.T) {
	cfg := defaultSim(7)
	cfg.clients, cfg.keys, cfg.ops = 12, []string{"a", "b", "c"}, 6000
	ops, _ := simulate(cfg)
	opts := DefaultLinearizableOptions()
	opts.Timeout = 5 * time.Minute // a bound for CI machines, not a timing assert
	r := LinearizableWith(ops, t.TempDir(), opts)
	wantOK(t, r)
	if r.Stats["ops"] < 2000 {
		t.Fatalf("only %d operations reached the model", r.Stats["ops"])
	}
}
