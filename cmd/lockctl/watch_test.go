package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/clustertest"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// lockctl watch prints one line per event (--json: one object per line)
// and resumes with --from; lockctl top --once shows the hottest key with
// its holder and queue.
func TestWatchAndTop(t *testing.T) {
	bin := buildLockctl(t)
	c := clustertest.New(t, 3)
	c.Leader()
	env := []string{"RAFTLOCK_ENDPOINTS=" + c.Addr(c.Followers()[0])}
	cl := testClient(t, c.Addrs())
	ctx := t.Context()

	l, err := cl.Acquire(ctx, []string{"top:hot"}, client.WithOwner("holder"), client.WithExpire(0))
	if err != nil {
		t.Fatal(err)
	}
	first := l.Token()
	for _, o := range []string{"w1", "w2"} {
		go func() {
			_, _ = cl.Acquire(ctx, []string{"top:hot"}, client.WithOwner(o), client.WithWait(time.Minute))
		}()
	}
	// Both waiters queued: top:hot has a queue of 2.
	var seen string
	testcluster.Poll(t, 30*time.Second, 20*time.Millisecond, "both waiters queued on top:hot", func() bool {
		li, err := cl.Get(ctx, "top:hot")
		seen = fmt.Sprintf("%+v %v", li, err)
		return err == nil && li != nil && li.Waiters == 2
	}, &seen)

	if _, err := cl.Acquire(ctx, []string{"top:cold"}, client.WithOwner("other"), client.WithExpire(0)); err != nil {
		t.Fatal(err)
	}
	// The first snapshot holds every write committed before the call (a
	// ReadIndex, also on a follower); poll all the same, should the node be
	// slow to find its leader.
	var r result
	var lines []string
	ok := func() bool {
		r = lockctl(t, bin, env, "top", "--once", "top:")
		if r.code != 0 {
			t.Fatalf("top --once: %d %s", r.code, r.stderr)
		}
		lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
		return len(lines) == 3 && strings.HasPrefix(lines[1], "top:hot") && strings.Contains(lines[1], `"holder"`) &&
			(strings.Contains(lines[1], `"w1"`) || strings.Contains(lines[1], `"w2"`)) && strings.Fields(lines[1])[4] == "2" &&
			strings.HasPrefix(lines[2], "top:cold")
	}
	testcluster.Poll(t, 30*time.Second, 50*time.Millisecond, "top --once to show top:hot (holder, queue of 2) before top:cold", func() bool {
		done := ok()
		seen = "\n" + r.stdout
		return done
	}, &seen)

	// From the first grant on: the waiters joining, then the other acquire.
	r = lockctl(t, bin, env, "watch", "--from", jsonNumber(first), "--count", "3", "top:")
	if r.code != 0 {
		t.Fatalf("watch: %d %s", r.code, r.stderr)
	}
	got := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(got) != 3 || !strings.Contains(got[0], "waiter_joined top:hot") || !strings.Contains(got[1], "waiter_joined top:hot") ||
		!strings.Contains(got[2], `acquired top:cold owner="other"`) {
		t.Fatalf("watch --from %d:\n%s", first, r.stdout)
	}
	r = lockctl(t, bin, env, "--json", "watch", "--from", jsonNumber(first), "--count", "1", "top:")
	var ev struct {
		Index uint64 `json:"index"`
		Key   string `json:"key"`
		Kind  string `json:"kind"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ev); err != nil || ev.Kind != "waiter_joined" || ev.Key != "top:hot" || ev.Index <= first {
		t.Fatalf("watch --json: %q (%v)", r.stdout, err)
	}
}
