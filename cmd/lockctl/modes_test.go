package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/raftlock/raftlock/cluster/clustertest"
)

// acquire and exec with --shared and --limit/--permits against a real
// cluster: two shared holders, get naming both, a semaphore's slots in the
// output and in exec's environment, a wrong limit refused, and the usage
// errors of mixed flags.
func TestModeFlags(t *testing.T) {
	bin := buildLockctl(t)
	c := clustertest.New(t, 3)
	c.WaitForVersion(2)
	env := []string{"RAFTLOCK_ENDPOINTS=" + c.Addr(c.Followers()[0])}
	run := func(want int, args ...string) result {
		t.Helper()
		r := lockctl(t, bin, env, args...)
		if r.code != want {
			t.Fatalf("lockctl %v = %d, want %d\nstdout: %s\nstderr: %s", args, r.code, want, r.stdout, r.stderr)
		}
		return r
	}
	run(0, "acquire", "--owner", "r1", "--shared", "stock")
	if r := run(0, "acquire", "--owner", "r2", "--shared", "stock"); !strings.Contains(r.stdout, ", shared,") {
		t.Fatalf("shared acquire: %s", r.stdout)
	}
	if r := run(0, "get", "stock"); !strings.Contains(r.stdout, `held shared by "r1", "r2"`) {
		t.Fatalf("get: %s", r.stdout)
	}
	r := run(0, "--json", "acquire", "--owner", "i1", "--limit", "2", "--permits", "2", "imports")
	var acq struct {
		Mode  string              `json:"mode"`
		Slots map[string][]uint32 `json:"slots"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &acq); err != nil || acq.Mode != "semaphore" || len(acq.Slots["imports"]) != 2 {
		t.Fatalf("semaphore acquire json: %s (%v)", r.stdout, err)
	}
	run(0, "release", "--owner", "i1", "imports")
	r = run(0, "exec", "--limit", "2", "imports", "--", "sh", "-c", `echo "$RAFTLOCK_LOCK_MODE $RAFTLOCK_SLOTS"`)
	if strings.TrimSpace(r.stdout) != "semaphore imports=0" {
		t.Fatalf("exec environment: %q", r.stdout)
	}
	run(0, "acquire", "--owner", "i2", "--limit", "2", "imports")
	if r := run(1, "acquire", "--owner", "i3", "--limit", "3", "imports"); !strings.Contains(r.stderr, "limit 2, the request names limit 3") {
		t.Fatalf("wrong limit: %s", r.stderr)
	}
	run(2, "acquire", "--owner", "x", "--shared", "--limit", "2", "k")
	run(2, "acquire", "--owner", "x", "--permits", "2", "k")
}
