//go:build docker

package dockertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
)

// TestComposeCluster protects an operator's first hour with the compose
// cluster: all three containers become healthy; every host port takes a
// lock; `docker kill` of the leader container elects a new leader and the
// held lock keeps its owner and fencing token; the killed node comes back
// and catches up; stopping and starting every container, and then
// recreating every container from its volume, keeps the lock table; and a
// key released after all that is granted again with a larger token. It
// runs plain and with TLS and tokens (docker/compose.tls.yaml), where it
// first checks that the secured ports refuse what they must.
func TestComposeCluster(t *testing.T) {
	forEachMode(t, testComposeCluster)
}

func testComposeCluster(t *testing.T, m mode) {
	c := newCluster(t, m)
	all := []int{0, 1, 2}
	if m.tls {
		c.checkRefusals()
	}

	// Every host port takes a lock, and every other port sees it.
	want := map[string]*raftlockv1.Lock{}
	for i, n := range nodes {
		key, owner := "dockertest/port-"+n, "owner-"+n
		got := c.mustAcquire(i, key, owner)
		want[key] = got
		for _, j := range all {
			c.checkLock(j, key, got)
		}
	}

	// The lock that must survive everything below.
	const heldKey, holder = "stock/item-42", "holder"
	held := c.mustAcquire(0, heldKey, holder)
	want[heldKey] = held
	t.Logf("%s held by %s with fencing token %d", heldKey, holder, held.FencingToken)

	// Kill the leader's container: the two others elect a new leader, and
	// the lock is still held, with the same token.
	leader := c.waitLeader(all, "")
	t.Logf("leader: %s; docker kill %s", nodes[leader], c.container(nodes[leader]))
	c.docker("kill", c.container(nodes[leader]))
	survivors := slices.DeleteFunc(slices.Clone(all), func(i int) bool { return i == leader })
	newLeader := c.waitLeader(survivors, nodes[leader])
	t.Logf("new leader: %s", nodes[newLeader])
	for _, j := range survivors {
		c.checkLock(j, heldKey, held)
	}
	// Still held means still exclusive: another owner is refused at once,
	// with the message callers match on.
	_, err := retry(c, func(ctx context.Context) (*connect.Response[raftlockv1.AcquireResponse], error) {
		return c.lock(survivors[0]).Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{
			Keys: []string{heldKey}, OwnerId: "intruder", RequestId: "dockertest-" + randHex(8),
		}))
	})
	if connect.CodeOf(err) != connect.CodeAborted || !strings.Contains(err.Error(), fmt.Sprintf("Failed to acquire lock for key %q", heldKey)) {
		t.Fatalf("acquire of the held key by another owner after failover: err = %v, want aborted %q", err, fmt.Sprintf("Failed to acquire lock for key %q", heldKey))
	}

	// The killed node comes back (docker kill is a manual stop: the restart
	// policy leaves it down) and catches up with the leader's log.
	c.docker("start", c.container(nodes[leader]))
	c.waitHealthy(nodes...)
	c.waitCaughtUp(leader, newLeader)
	c.checkLock(leader, heldKey, held)

	// Stop every container, start them again: same containers, same
	// volumes, same lock table.
	c.compose("stop")
	states, err := c.state(nodes...)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !strings.HasPrefix(states[n], "exited") {
			t.Fatalf("after compose stop, %s is %q, want exited", n, states[n])
		}
	}
	c.compose("start")
	c.waitHealthy(nodes...)
	c.waitLeader(all, "")
	c.checkTable(all, want)

	// Recreate every container (compose down without --volumes, then up):
	// only the named volumes carry the lock table over, and every node
	// says it started from the state on its own volume.
	before := c.containerIDs()
	c.compose("down")
	c.compose("up", "-d")
	c.waitHealthy(nodes...)
	after := c.containerIDs()
	for _, n := range nodes {
		if before[n] == after[n] {
			t.Fatalf("container of %s was not recreated (id %s)", n, before[n])
		}
		c.checkDataVolume(n)
		if logs := c.docker("logs", c.container(n)); !existingState.MatchString(logs) {
			t.Fatalf("recreated %s did not start from existing state on its volume; its log:\n%s", n, logs)
		}
	}
	c.waitLeader(all, "")
	c.checkTable(all, want)

	// Release with the token the lock has carried through all of the
	// above; the next grant of the key gets a larger token.
	rel, err := retry(c, func(ctx context.Context) (*connect.Response[raftlockv1.ReleaseResponse], error) {
		token := held.FencingToken
		return c.lock(2).Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{
			Keys: []string{heldKey}, OwnerId: holder, FencingToken: &token, RequestId: "dockertest-release-" + randHex(8),
		}))
	})
	if err != nil || !rel.Msg.Released {
		t.Fatalf("release of %s with token %d: released=%v err=%v", heldKey, held.FencingToken, rel != nil && rel.Msg.Released, err)
	}
	next := c.mustAcquire(1, heldKey, "next-holder")
	if next.FencingToken <= held.FencingToken {
		t.Fatalf("token of %s after release = %d, want > %d", heldKey, next.FencingToken, held.FencingToken)
	}
}

// mustAcquire acquires key for owner through node i (no wait, never
// expires) and returns the granted lock.
func (c *cluster) mustAcquire(i int, key, owner string) *raftlockv1.Lock {
	c.t.Helper()
	rid := "dockertest-" + randHex(8)
	resp, err := retry(c, func(ctx context.Context) (*connect.Response[raftlockv1.AcquireResponse], error) {
		return c.lock(i).Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{Keys: []string{key}, OwnerId: owner, RequestId: rid}))
	})
	if err != nil {
		c.t.Fatalf("acquire %s for %s through %s (port %d): %v", key, owner, nodes[i], c.ports[i], err)
	}
	m := resp.Msg
	if m.FencingToken == 0 || len(m.Locks) != 1 || m.Locks[0].Key != key || m.Locks[0].OwnerId != owner || m.Locks[0].FencingToken != m.FencingToken {
		c.t.Fatalf("acquire %s for %s through %s: response %v", key, owner, nodes[i], m)
	}
	return m.Locks[0]
}

// checkLock fails the test unless node i reports key held as want says:
// same owner, same fencing token.
func (c *cluster) checkLock(i int, key string, want *raftlockv1.Lock) {
	c.t.Helper()
	resp, err := retry(c, func(ctx context.Context) (*connect.Response[raftlockv1.GetLockResponse], error) {
		return c.lock(i).GetLock(ctx, connect.NewRequest(&raftlockv1.GetLockRequest{Key: key}))
	})
	if err != nil {
		c.t.Fatalf("get %s through %s: %v", key, nodes[i], err)
	}
	got := resp.Msg.Lock
	if got == nil || got.OwnerId != want.OwnerId || got.FencingToken != want.FencingToken {
		c.t.Fatalf("%s through %s = %v, want owner %q token %d", key, nodes[i], got, want.OwnerId, want.FencingToken)
	}
}

// checkTable fails the test unless every node in among lists exactly the
// locks of want, each with its owner and token.
func (c *cluster) checkTable(among []int, want map[string]*raftlockv1.Lock) {
	c.t.Helper()
	for _, i := range among {
		resp, err := retry(c, func(ctx context.Context) (*connect.Response[raftlockv1.ListLocksResponse], error) {
			return c.lock(i).ListLocks(ctx, connect.NewRequest(&raftlockv1.ListLocksRequest{}))
		})
		if err != nil {
			c.t.Fatalf("list locks through %s: %v", nodes[i], err)
		}
		got := resp.Msg.Locks
		if len(got) != len(want) {
			c.t.Fatalf("list locks through %s: %d locks %v, want %d", nodes[i], len(got), got, len(want))
		}
		for _, l := range got {
			w := want[l.Key]
			if w == nil || l.OwnerId != w.OwnerId || l.FencingToken != w.FencingToken {
				c.t.Fatalf("list locks through %s: %v, want %v", nodes[i], l, w)
			}
		}
	}
}

// waitCaughtUp waits until node i has applied everything the leader had
// committed when the wait began.
func (c *cluster) waitCaughtUp(i, leader int) {
	c.t.Helper()
	st, err := c.status(leader)
	if err != nil {
		c.t.Fatalf("status of the leader %s: %v", nodes[leader], err)
	}
	target := st.CommitIndex
	var last string
	c.waitFor(leaderTimeout, fmt.Sprintf("%s to apply index %d", nodes[i], target), func() bool {
		st, err := c.status(i)
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("applied %d", st.AppliedIndex)
		return st.AppliedIndex >= target
	}, &last)
}

// existingState matches the node's start-up log line when it found Raft
// state in its data directory (text or JSON logs).
var existingState = regexp.MustCompile(`existing_state"?[=:]true`)

// checkDataVolume fails the test unless the service's container keeps
// /data in the named volume compose made for it (project_nX-data).
func (c *cluster) checkDataVolume(svc string) {
	c.t.Helper()
	out := c.docker("inspect", "--format", `{{range .Mounts}}{{.Destination}}={{.Type}}:{{.Name}} {{end}}`, c.container(svc))
	want := fmt.Sprintf("/data=volume:%s_%s-data", c.project, svc)
	if !slices.Contains(strings.Fields(out), want) {
		c.t.Fatalf("mounts of %s: %q, want %s", c.container(svc), strings.TrimSpace(out), want)
	}
}

// containerIDs maps each service to its container's id.
func (c *cluster) containerIDs() map[string]string {
	c.t.Helper()
	ids := map[string]string{}
	for _, n := range nodes {
		ids[n] = strings.TrimSpace(c.docker("inspect", "--format", "{{.Id}}", c.container(n)))
	}
	return ids
}

// checkRefusals protects what TLS and tokens promise on every host port of
// a secured cluster: plain text gets no API answer; a TLS call without a
// token, or with an unknown one, is unauthenticated; a token limited to
// tenant-a/ is permission_denied on a tenant-b/ key and takes nothing;
// a client that does not trust the cluster's CA fails the handshake; and
// /readyz, which the containers' healthcheck reads, stays open.
func (c *cluster) checkRefusals() {
	c.t.Helper()
	const key = "tenant-b/stock"
	for i := range nodes {
		// Plain HTTP to the TLS port: the TLS layer answers 400 itself.
		plain := &http.Client{Timeout: callTimeout}
		resp, err := plain.Post(fmt.Sprintf("http://127.0.0.1:%d/raftlock.v1.LockService/GetLock", c.ports[i]), "application/json", strings.NewReader(`{"key":"k"}`))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS server") {
				c.t.Fatalf("plain-text call to %s's TLS port: %s %q, want the TLS layer's 400", nodes[i], resp.Status, body)
			}
		}
		// The host's view of the TLS port does not trust just any CA.
		if _, err := (&http.Client{Timeout: callTimeout}).Get(fmt.Sprintf("https://127.0.0.1:%d/readyz", c.ports[i])); err == nil || !strings.Contains(err.Error(), "certificate") {
			c.t.Fatalf("https to %s without the development CA: err = %v, want a certificate error", nodes[i], err)
		}
		// Health is open to anyone who speaks TLS: no token needed.
		resp, err = c.client("").Get(c.url(i) + "/readyz")
		if err != nil {
			c.t.Fatalf("readyz of %s over TLS: %v", nodes[i], err)
		}
		resp.Body.Close()

		for _, tc := range []struct {
			name, token string
			code        connect.Code
		}{
			{"no token", "", connect.CodeUnauthenticated},
			{"an unknown token", "rl_" + randHex(24), connect.CodeUnauthenticated},
			{"the tenant-a token", secrets.tokens[tenantTokenName], connect.CodePermissionDenied},
		} {
			_, err := call(c, func(ctx context.Context) (*connect.Response[raftlockv1.AcquireResponse], error) {
				return raftlockv1connect.NewLockServiceClient(c.client(tc.token), c.url(i)).Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{
					Keys: []string{key}, OwnerId: "intruder", RequestId: "dockertest-" + randHex(8),
				}))
			})
			if connect.CodeOf(err) != tc.code {
				c.t.Fatalf("acquire %s through %s with %s: err = %v, want %s", key, nodes[i], tc.name, err, tc.code)
			}
			for _, secret := range secrets.tokens {
				if strings.Contains(err.Error(), secret) {
					c.t.Fatalf("the refusal names a token secret: %v", err)
				}
			}
		}
	}
	if got := c.getLock(key); got != nil {
		c.t.Fatalf("after the refused acquires, %s is %v, want free", key, got)
	}
}
