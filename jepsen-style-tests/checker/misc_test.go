package checker

import (
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// Promise 6 as reported: within the limit passes, over it or never fails.
func TestRecovery(t *testing.T) {
	r := Recovery(2*time.Second, 3*time.Second, 5*time.Second)
	wantOK(t, r)
	if r.Stats["leader_ms"] != 2000 || r.Stats["all_keys_ms"] != 3000 || r.Stats["limit_ms"] != 5000 {
		t.Fatalf("stats = %v", r.Stats)
	}
	wantFail(t, Recovery(6*time.Second, 7*time.Second, 5*time.Second), "a leader took 6s", "every key acquirable took 7s")
	r = Recovery(time.Second, -1, 5*time.Second)
	wantFail(t, r, "every key acquirable never came back")
	if r.Stats["all_keys_ms"] != -1 {
		t.Fatalf("stats = %v", r.Stats)
	}
}

// The recorder's contract: a broken history is reported, not trusted.
func TestWellFormed(t *testing.T) {
	t.Run("a good history", func(t *testing.T) {
		var b h
		b.acquire(1, "a", 0, 10, ok, 5, 100)
		b.write(1, "a", 20, 30, 5, true)
		b.refresh(1, "a", 40, 50, ok, 100)
		b.write(1, "a", 100, 110, 5, true) // inside the refreshed deadline 130
		b.release(1, "a", 120, 130, ok, true, 0)
		b.acquire(2, "b", 0, 200, unknown, 0, 100)
		b.acquire(2, "c", 200, 210, ok, 9, 0)
		b.write(2, "c", 220, 230, 9, true)
		r := WellFormed(b.ops)
		wantOK(t, r)
		if r.Stats["acquire_ok"] != 2 || r.Stats["write_ok"] != 3 {
			t.Fatalf("stats = %v", r.Stats)
		}
	})
	for _, tc := range []struct {
		name  string
		build func(b *h)
		want  string
	}{
		{"two ops of a client at once", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.read(1, 5, 15, "a", 5)
		}, "client 1 invoked op 2"},
		{"a reused request id", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.acquire(2, "b", 20, 30, fail, 0, 100).RequestID = "r1"
		}, "request id r1 is used by op 1 and op 2"},
		{"a reused owner", func(b *h) {
			b.acquire(1, "a", 0, 10, fail, 0, 100)
			b.acquire(1, "a", 20, 30, ok, 5, 100)
		}, `owner "a" is used by acquire op 1 and acquire op 2`},
		{"a missing deadline", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100).Deadline = 0
		}, "no deadline"},
		{"a write after the deadline", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100) // deadline 90
			b.write(1, "a", 95, 96, 5, true)
		}, "write op 2"},
		{"a write after the release", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.release(1, "a", 20, 30, ok, true, 0)
			b.write(1, "a", 40, 50, 5, false)
		}, "outside any holding"},
		{"a write with a token it does not hold", func(b *h) {
			b.acquire(1, "a", 0, 10, ok, 5, 100)
			b.write(1, "a", 20, 30, 6, true)
		}, "outside any holding"},
		{"an unknown kind", func(b *h) {
			b.add(history.Op{Client: 1, Kind: "lock", Outcome: ok})
		}, `unknown kind "lock"`},
		{"a return before the invocation", func(b *h) {
			b.acquire(1, "a", 10, 5, fail, 0, 100)
		}, "before its invocation"},
		{"a resolved op with an unknown outcome", func(b *h) {
			b.acquire(1, "a", 0, 10, unknown, 0, 100).Resolved = true
		}, "resolved but its outcome is still unknown"},
		{"a duplicate id", func(b *h) {
			b.acquire(1, "a", 0, 10, fail, 0, 100)
			b.acquire(2, "b", 0, 10, fail, 0, 100).ID = 1
		}, "op id 1 is used twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b h
			tc.build(&b)
			wantFail(t, WellFormed(b.ops), tc.want)
		})
	}
}

// Results cap their problems and the summary renders every result.
func TestResultAndSummary(t *testing.T) {
	rep := newReport("demo")
	for i := range MaxProblems + 5 {
		rep.problemf("problem %d", i)
	}
	r := rep.result()
	if r.OK || r.Stats["problems"] != MaxProblems+5 {
		t.Fatalf("result = %+v", r)
	}
	if len(r.Problems) != MaxProblems+1 || r.Problems[MaxProblems] != "... and 5 more problems" {
		t.Fatalf("problems = %q", r.Problems)
	}
	good := Recovery(time.Second, time.Second, time.Minute)
	s := Summary([]Result{good, r})
	for _, want := range []string{
		"checker   result  problems  stats",
		"recovery  OK             0  all_keys_ms=1000 leader_ms=1000 limit_ms=60000",
		"demo      FAIL          30",
		"demo:\n  - problem 0\n",
		"  - ... and 5 more problems\n",
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "all 2 checks passed") {
		t.Fatal("summary says all passed")
	}
	if s := Summary([]Result{good}); !strings.Contains(s, "all 1 checks passed") {
		t.Fatalf("summary of a passing run:\n%s", s)
	}
}
