package checker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// Histories the lock model must accept: DESIGN.md section 2 behaviour,
// including lease expiry, waiting without barging, unknown and resolved
// outcomes.
func TestLinearizableAcceptsLegalHistories(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *h)
	}{
		{"sequential acquire release acquire", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.read(3, 12, 14, "a", 5)
			b.release(1, "a", 20, 30, ok, true, 0)
			b.read(3, 31, 33, "", 0)
			b.acquire(2, "b", 40, 50, ok, 9, 0)
			b.release(2, "b", 60, 70, ok, true, 9) // token release
		}},
		{"concurrent acquires, one busy", func(b *h) {
			b.acquire(1, "a", 0, 20, ok, 5, 1000)
			b.acquire(2, "b", 5, 15, fail, 0, 1000)
		}},
		{"busy on a free key (a waiter was first, no barging)", func(b *h) {
			b.acquire(1, "a", 0, 10, fail, 0, 1000)
			b.read(2, 11, 12, "", 0)
		}},
		{"overlapping acquires linearize in either order", func(b *h) {
			// b's acquire returns first but may take effect after a's release.
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.acquire(2, "b", 5, 100, ok, 8, 0)
			b.release(1, "a", 20, 30, ok, true, 0)
		}},
		{"lease expiry allows a takeover after the floor", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.acquire(2, "b", 90, 105, ok, 8, 100) // returns after 0+100
			b.release(1, "a", 110, 120, ok, false, 0)
		}},
		{"read sees an expired lock as free after the floor", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.read(2, 50, 60, "a", 5)
			b.read(2, 95, 101, "", 0)
		}},
		{"released=false for an owner whose lease may have expired", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.release(1, "a", 95, 105, ok, false, 0)
			b.read(2, 110, 111, "", 0)
		}},
		{"failed token release after the lock was taken over", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.acquire(2, "b", 150, 160, ok, 8, 100)
			b.release(1, "a", 170, 180, fail, false, 5)
			b.read(3, 190, 191, "b", 8)
		}},
		{"refresh extends the lease", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.refresh(1, "a", 50, 60, ok, 100)
			b.read(2, 120, 130, "a", 5) // original lease could have ended, refreshed one not
			b.acquire(2, "b", 140, 155, ok, 8, 100)
		}},
		{"refresh with ttl 0 keeps the lock's ttl", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.refresh(1, "a", 50, 60, ok, 0)
			b.read(2, 140, 145, "a", 5)
			b.read(2, 150, 151, "", 0)
		}},
		{"unknown acquire that took effect", func(b *h) {
			b.acquire(1, "a", 0, 10, unknown, 0, 100)
			b.read(2, 20, 30, "a", 7)
			b.acquire(2, "b", 40, 50, fail, 0, 100)
			b.acquire(3, "c", 200, 210, ok, 9, 100)
		}},
		{"unknown acquire that took effect after its client gave up", func(b *h) {
			b.acquire(1, "x", 0, 10, ok, 3, 0)
			b.acquire(2, "a", 5, 8, unknown, 0, 100) // queued behind x, granted later
			b.release(1, "x", 20, 30, ok, true, 0)
			b.read(3, 40, 50, "a", 7)
		}},
		{"unknown acquire that never took effect", func(b *h) {
			b.acquire(1, "a", 0, 10, unknown, 0, 0)
			b.read(2, 20, 30, "", 0)
			b.acquire(2, "b", 40, 50, ok, 9, 0)
		}},
		{"unknown release that took effect", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0) // never expires
			b.release(1, "a", 20, 30, unknown, false, 0)
			b.acquire(2, "b", 40, 50, ok, 9, 0)
		}},
		{"unknown release that never took effect", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.release(1, "a", 20, 30, unknown, false, 0)
			b.read(2, 40, 50, "a", 5)
		}},
		{"unknown refresh that took effect keeps the lock alive", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.refresh(1, "a", 50, 60, unknown, 100)
			b.read(2, 120, 130, "a", 5)
		}},
		{"resolved acquire took effect late", func(b *h) {
			b.acquire(1, "x", 0, 10, ok, 3, 0)
			r := b.acquire(2, "a", 5, 8, ok, 7, 100)
			r.Resolved, r.Deadline = true, 0
			b.release(1, "x", 20, 30, ok, true, 0)
			b.read(3, 40, 50, "a", 7)
		}},
		{"resolved release", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			r := b.release(1, "a", 20, 30, ok, true, 0)
			r.Resolved = true
			b.acquire(2, "b", 40, 50, ok, 9, 0)
		}},
		{"failed ops that say nothing are ignored", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.refresh(2, "zz", 11, 12, fail, 100)
			b.release(2, "zz", 13, 14, fail, false, 0)
			b.add(history.Op{Client: 3, Kind: history.KindRead, Invoke: ms(15), Return: ms(16), Outcome: unknown})
			b.read(3, 20, 21, "a", 5)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b h
			tc.build(&b)
			wantOK(t, Linearizable(b.ops, t.TempDir()))
		})
	}
}

// Histories that break the lock's contract must be caught, each for the
// reason named.
func TestLinearizableCatchesViolations(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *h)
	}{
		{"double holders: second acquire while a lock that never expires is held", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.acquire(2, "b", 20, 30, ok, 8, 0)
		}},
		{"acquire while the previous lease cannot have ended yet", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.acquire(2, "b", 50, 99, ok, 8, 100) // returned before 0+100
		}},
		{"acquire after a refresh, before the refreshed lease can end", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.refresh(1, "a", 50, 60, ok, 100)
			b.acquire(2, "b", 120, 130, ok, 8, 100) // 130 < 50+100
		}},
		{"token not above an earlier grant", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.release(1, "a", 20, 30, ok, true, 0)
			b.acquire(2, "b", 40, 50, ok, 5, 0)
		}},
		{"read sees a holder that never acquired", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.read(2, 20, 30, "ghost", 5)
		}},
		{"read sees the holder's wrong token", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.read(2, 20, 30, "a", 6)
		}},
		{"read sees a released holder", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.release(1, "a", 20, 30, ok, true, 0)
			b.read(2, 40, 50, "a", 5)
		}},
		{"read sees free before the lease can have ended", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.read(2, 40, 50, "", 0)
		}},
		{"stale read: free after a newer holder was seen", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.read(2, 20, 30, "a", 5)
			b.read(3, 40, 50, "", 0)
		}},
		{"release by someone who does not hold", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.release(2, "b", 20, 30, ok, true, 0)
		}},
		{"token release with a stale token succeeds", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.release(1, "a", 20, 30, ok, true, 4)
		}},
		{"released=false while the holder certainly held it", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.release(1, "a", 20, 30, ok, false, 0)
		}},
		{"failed token release while the token was current", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.release(1, "a", 20, 30, fail, false, 5)
		}},
		{"refresh ok after release", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.release(1, "a", 20, 30, ok, true, 0)
			b.refresh(1, "a", 40, 50, ok, 100)
		}},
		{"unknown acquire cannot take a lease that has not ended", func(b *h) {
			// g's grant at any later time would need a's lease to have
			// ended, which cannot happen before 100; the read returned at 50.
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.acquire(2, "g", 20, 30, unknown, 0, 100)
			b.read(3, 40, 50, "g", 7)
		}},
		{"resolved acquire cannot take a lease that has not ended", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			r := b.acquire(2, "g", 20, 30, ok, 7, 100)
			r.Resolved, r.Deadline = true, 0
			b.read(3, 40, 50, "g", 7)
		}},
		{"an expiry seen late does not excuse an early operation", func(b *h) {
			// g (resolved, unknown time) can only have taken the key after
			// a's lease ended (>= 100); a's release at 40..50 then said
			// "not held" while a certainly held it. Ordering the release
			// after g would put an operation that returned at 50 after an
			// expiry at >= 100.
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			g := b.acquire(2, "g", 20, 30, ok, 7, 100)
			g.Resolved, g.Deadline = true, 0
			b.release(1, "a", 40, 50, ok, false, 0)
		}},
		{"second acquire while the first is unreleased, never-expiring, and a release is unknown for another owner", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 0)
			b.release(2, "z", 15, 18, unknown, false, 0)
			b.acquire(2, "b", 20, 30, ok, 8, 0)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b h
			tc.build(&b)
			dir := t.TempDir()
			r := Linearizable(b.ops, dir)
			wantFail(t, r, `key "k": not linearizable`, "visualisation: ")
			path := filepath.Join(dir, "linearizable-k.html")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("visualisation not written: %v", err)
			}
			if !strings.Contains(string(data), "<html") {
				t.Fatalf("visualisation %s is not HTML", path)
			}
		})
	}
}

// A violation on one key is reported for that key only, and keys are
// checked independently.
func TestLinearizablePerKey(t *testing.T) {
	var b h
	b.acquire(1, "a", 0, 10, ok, 5, 0)
	x := b.acquire(2, "b", 20, 30, ok, 8, 0)
	x.Key = "other/key" // a different key: no conflict
	y := b.acquire(3, "c", 40, 50, ok, 9, 0)
	y.Key = "bad key"
	z := b.acquire(4, "d", 60, 70, ok, 10, 0)
	z.Key = "bad key"
	dir := t.TempDir()
	r := Linearizable(b.ops, dir)
	wantFail(t, r, `key "bad key"`)
	if r.Stats["keys"] != 3 || r.Stats["keys_illegal"] != 1 {
		t.Fatalf("stats = %v, want 3 keys, 1 illegal", r.Stats)
	}
	if _, err := os.Stat(filepath.Join(dir, "linearizable-bad%20key.html")); err != nil {
		t.Fatalf("per-key visualisation: %v", err)
	}
}

// Without an output directory nothing is written, but the violation is
// still reported, and the nemesis timeline may annotate the HTML.
func TestLinearizableOptions(t *testing.T) {
	var b h
	b.acquire(1, "a", 0, 10, ok, 5, 0)
	b.acquire(2, "b", 20, 30, ok, 8, 0)
	r := Linearizable(b.ops, "")
	wantFail(t, r, "not linearizable")
	for _, p := range r.Problems {
		if strings.Contains(p, "visualisation") {
			t.Fatalf("no output dir, but a visualisation is named: %s", p)
		}
	}
	dir := filepath.Join(t.TempDir(), "sub")
	opts := DefaultLinearizableOptions()
	opts.Timeline = history.Timeline{{Name: "kill", Targets: []string{"n1"}, Start: ms(5), End: ms(25)}}
	r = LinearizableWith(b.ops, dir, opts)
	wantFail(t, r, "visualisation")
	data, err := os.ReadFile(filepath.Join(dir, "linearizable-k.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "kill n1") {
		t.Fatal("timeline annotation missing from the visualisation")
	}
	if opts.Timeout != time.Minute {
		t.Fatalf("default timeout = %s", opts.Timeout)
	}
}

// The model's rule for dropping unknown refreshes: dropped only when it is
// its owner's last lease-setting operation and asks no shorter TTL.
func TestLinearizableUnknownRefreshDropRule(t *testing.T) {
	var b h
	b.acquire(1, "a", 0, 10, ok, 5, 100)
	b.refresh(1, "a", 20, 30, unknown, 100) // last, same TTL: dropped
	b.acquire(2, "b", 0, 10, fail, 0, 100)  // dropped (failed acquire)
	b.acquire(3, "c", 200, 210, ok, 6, 100)
	b.refresh(3, "c", 220, 230, unknown, 50) // shorter TTL: kept
	b.acquire(4, "d", 300, 310, ok, 8, 100)
	b.refresh(4, "d", 320, 330, unknown, 100) // not the last: kept
	b.refresh(4, "d", 340, 350, ok, 100)
	r := Linearizable(b.ops, "")
	wantOK(t, r)
	if r.Stats["dropped"] != 2 || r.Stats["unknown_kept"] != 2 {
		t.Fatalf("stats = %v, want 2 dropped, 2 unknown kept", r.Stats)
	}
}

// A search that runs out of time is a failure, never a pass.
func TestLinearizableTimeoutIsNotOK(t *testing.T) {
	saved := checkOperations
	t.Cleanup(func() { checkOperations = saved })
	checkOperations = func(m porcupine.Model, h []porcupine.Operation, d time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
		return porcupine.Unknown, porcupine.LinearizationInfo{}
	}
	var b h
	b.acquire(1, "a", 0, 10, ok, 5, 0)
	r := LinearizableWith(b.ops, t.TempDir(), LinearizableOptions{Timeout: time.Second})
	wantFail(t, r, `key "k": porcupine timed out after 1s`, "not established")
	if r.Stats["keys_timed_out"] != 1 {
		t.Fatalf("stats = %v", r.Stats)
	}
}

// A malformed operation is reported and kept out of porcupine.
func TestLinearizableMalformedOp(t *testing.T) {
	var b h
	b.acquire(1, "a", 10, 5, ok, 5, 0)
	wantFail(t, Linearizable(b.ops, ""), "left out malformed", "before its invocation")
}

// Unknown acquires nobody observed are left out; one a read saw becomes a
// grant with the token the read saw, made before the read returned.
func TestLinearizableUnknownAcquireRules(t *testing.T) {
	var b h
	b.acquire(1, "ghost", 0, 10, unknown, 0, 100) // never observed: dropped
	b.acquire(2, "seen", 20, 30, unknown, 0, 100)
	b.read(3, 40, 50, "seen", 7)
	b.acquire(4, "a", 200, 210, ok, 9, 100)
	r := Linearizable(b.ops, "")
	wantOK(t, r)
	if r.Stats["dropped"] != 1 || r.Stats["unknown_kept"] != 0 || r.Stats["ops"] != 3 {
		t.Fatalf("stats = %v, want 1 dropped, 3 in the model, none unknown", r.Stats)
	}
	// The read bounds the grant: a read that returned before it cannot see
	// it, and another read may not see a different token for it.
	b.read(5, 52, 60, "seen", 8)
	wantFail(t, Linearizable(b.ops, ""), "not linearizable")
}
