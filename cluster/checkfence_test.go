package cluster_test

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/cluster"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

func checkFence(t *testing.T, c raftlockv1connect.LockServiceClient, key string, token uint64) *raftlockv1.CheckFenceResponse {
	t.Helper()
	resp, err := c.CheckFence(ctxT(t), connect.NewRequest(&raftlockv1.CheckFenceRequest{Key: key, FencingToken: token}))
	if err != nil {
		t.Fatalf("check fence %q %d: %v", key, token, err)
	}
	return resp.Msg
}

// CheckFence through a follower says a token is current exactly while it
// is the key's grant: a re-entrant acquire keeps it current (same token),
// a new grant to someone else makes it stale and reports the new holder,
// a free key has no current token, and bad input names the field.
func TestCheckFence(t *testing.T) {
	c := clustertest.New(t, 3)
	c.Leader()
	lc := c.LockClient(c.Followers()[0])
	ctx := ctxT(t)

	first := mustAcquire(t, ctx, lc, "alice", "sku-1").FencingToken
	if r := checkFence(t, lc, "sku-1", first); !r.Current || r.Lock.GetOwnerId() != "alice" || r.Lock.GetFencingToken() != first {
		t.Fatalf("held under %d: %v", first, r)
	}
	if again := mustAcquire(t, ctx, lc, "alice", "sku-1").FencingToken; again != first {
		t.Fatalf("re-entrant acquire: token %d, want the held %d", again, first)
	}
	if r := checkFence(t, lc, "sku-1", first); !r.Current {
		t.Fatalf("after a re-entrant acquire the held token %d is not current: %v", first, r)
	}
	if _, err := lc.Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{"sku-1"}, OwnerId: "alice"})); err != nil {
		t.Fatal(err)
	}
	if r := checkFence(t, lc, "sku-1", first); r.Current || r.Lock != nil {
		t.Fatalf("free key: %v", r)
	}
	second := mustAcquire(t, ctx, lc, "bob", "sku-1").FencingToken
	if second <= first {
		t.Fatalf("new grant token %d is not above %d", second, first)
	}
	if r := checkFence(t, lc, "sku-1", first); r.Current || r.Lock.GetOwnerId() != "bob" || r.Lock.GetFencingToken() != second {
		t.Fatalf("stale token %d after bob's grant %d: %v", first, second, r)
	}
	if r := checkFence(t, lc, "sku-1", second); !r.Current {
		t.Fatalf("bob's token %d: %v", second, r)
	}
	if r := checkFence(t, lc, "sku-1", second+1000); r.Current {
		t.Fatalf("a token from the future is current: %v", r)
	}

	_, err := lc.CheckFence(ctx, connect.NewRequest(&raftlockv1.CheckFenceRequest{Key: "sku-1"}))
	wantCode(t, err, connect.CodeInvalidArgument)
	if !strings.Contains(err.Error(), "fencing_token") {
		t.Fatalf("error %q does not name fencing_token", err)
	}
	_, err = lc.CheckFence(ctx, connect.NewRequest(&raftlockv1.CheckFenceRequest{FencingToken: 1}))
	wantCode(t, err, connect.CodeInvalidArgument)
	if !strings.Contains(err.Error(), "key") {
		t.Fatalf("error %q does not name key", err)
	}
}

// A lock whose lease ran out is not current, also for its own token.
func TestCheckFenceExpired(t *testing.T) {
	c := clustertest.New(t, 1)
	c.Leader()
	lc := c.LockClient(0)
	ctx := ctxT(t)
	r, err := acquire(ctx, lc, "alice", 200*time.Millisecond, 0, "lease")
	if err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the lease to run out", func() bool { return !checkFence(t, lc, "lease", r.FencingToken).Current })
	if l := getLock(t, ctx, lc, "lease"); l != nil && l.ExpiresIn.AsDuration() > 0 {
		t.Fatalf("token %d reported stale while the lock still has %s", r.FencingToken, l.ExpiresIn.AsDuration())
	}
}

// CheckFence is a read: a read token may call it on keys under its
// prefixes only.
func TestCheckFenceAuth(t *testing.T) {
	path := tokenFile(t)
	c := clustertest.New(t, 1, clustertest.WithTLS(), clustertest.WithConfig(func(cfg *cluster.Config) { cfg.AuthTokens = path }))
	c.Leader()
	ctx := ctxT(t)
	tenant, _ := authClients(c, 0, secretA)
	reader, _ := authClients(c, 0, secretRead)
	tok := mustAcquire(t, ctx, tenant, "o", "tenant-a/k").FencingToken
	if r := checkFence(t, tenant, "tenant-a/k", tok); !r.Current {
		t.Fatalf("tenant's own key: %v", r)
	}
	if r := checkFence(t, reader, "tenant-a/k", tok); !r.Current {
		t.Fatalf("read token without prefixes: %v", r)
	}
	_, err := tenant.CheckFence(ctx, connect.NewRequest(&raftlockv1.CheckFenceRequest{Key: "tenant-b/k", FencingToken: tok}))
	wantCode(t, err, connect.CodePermissionDenied)
}
