package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/raftlock/raftlock/cluster/clustertest"
)

// lockctl check-fence exits 0 while the token is the key's current grant
// (also after a re-entrant acquire, which keeps the token) and 1 once
// another holder got the key, naming that holder; bad arguments exit 2.
func TestCheckFenceCommand(t *testing.T) {
	bin := buildLockctl(t)
	c := clustertest.New(t, 1)
	c.Leader()
	env := []string{"RAFTLOCK_ENDPOINTS=" + c.Addr(0)}
	run := func(want int, args ...string) result {
		t.Helper()
		r := lockctl(t, bin, env, args...)
		if r.code != want {
			t.Fatalf("lockctl %v = %d, want %d\nstdout: %s\nstderr: %s", args, r.code, want, r.stdout, r.stderr)
		}
		return r
	}
	token := func(r result) string {
		t.Helper()
		var acq struct {
			Token uint64 `json:"token"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &acq); err != nil || acq.Token == 0 {
			t.Fatalf("acquire json = %s (%v)", r.stdout, err)
		}
		return jsonNumber(acq.Token)
	}

	first := token(run(0, "--json", "acquire", "--owner", "alice", "sku"))
	if r := run(0, "check-fence", "sku", first); !strings.Contains(r.stdout, "is current") {
		t.Fatalf("current token: %s", r.stdout)
	}
	if again := token(run(0, "--json", "acquire", "--owner", "alice", "sku")); again != first {
		t.Fatalf("re-entrant acquire: token %s, want %s", again, first)
	}
	run(0, "check-fence", "sku", first)
	run(0, "release", "--owner", "alice", "sku")
	if r := run(1, "check-fence", "sku", first); !strings.Contains(r.stdout, "the key is free") || r.stderr != "" {
		t.Fatalf("free key: stdout %q stderr %q", r.stdout, r.stderr)
	}
	second := token(run(0, "--json", "acquire", "--owner", "bob", "sku"))
	if r := run(1, "check-fence", "sku", first); !strings.Contains(r.stdout, `not current (held by "bob" under token `+second) {
		t.Fatalf("stale token: %s", r.stdout)
	}
	r := run(1, "--json", "check-fence", "sku", first)
	var out struct {
		Current bool     `json:"current"`
		Lock    lockJSON `json:"lock"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Current || out.Lock.Owner != "bob" || jsonNumber(out.Lock.Token) != second {
		t.Fatalf("stale token json = %s (%v)", r.stdout, err)
	}
	run(0, "check-fence", "sku", second)

	run(2, "check-fence", "sku")
	run(2, "check-fence", "sku", "0")
	run(2, "check-fence", "sku", "seven")
}
