package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/cluster"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

const (
	secretA     = "rl_tenant-a-secret-0123456789"
	secretAdmin = "rl_admin-secret-0123456789"
	secretRead  = "rl_reader-secret-0123456789"
)

func tokenFile(t *testing.T) string {
	t.Helper()
	f := cluster.TokenFile{Tokens: []cluster.Token{
		{Name: "tenant-a", SHA256: cluster.HashToken(secretA), Prefixes: []string{"tenant-a/"}, Verbs: []string{"acquire", "read"}},
		{Name: "ops", SHA256: cluster.HashToken(secretAdmin), Verbs: []string{"acquire", "read", "admin"}},
		{Name: "dashboard", SHA256: cluster.HashToken(secretRead), Verbs: []string{"read"}},
	}}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func bearer(token string) connect.Option {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if token != "" {
				req.Header().Set("Authorization", "Bearer "+token)
			}
			return next(ctx, req)
		}
	}))
}

func authClients(c *clustertest.Cluster, i int, token string) (raftlockv1connect.LockServiceClient, raftlockv1connect.ClusterServiceClient) {
	hc, base := c.APIClient(i)
	return raftlockv1connect.NewLockServiceClient(hc, base, connect.WithGRPC(), bearer(token)),
		raftlockv1connect.NewClusterServiceClient(hc, base, connect.WithGRPC(), bearer(token))
}

// A token limited to tenant-a/ cannot acquire, release, read or list
// tenant-b/ keys; a call without a known token is refused; verbs are
// enforced; refusals name no secret and change nothing.
func TestAuthTokens(t *testing.T) {
	path := tokenFile(t)
	c := clustertest.New(t, 3, clustertest.WithTLS(), clustertest.WithConfig(func(cfg *cluster.Config) { cfg.AuthTokens = path }))
	ctx := ctxT(t)
	follower := c.Followers()[0] // every call goes through a follower: forwarding keeps the rules
	tenant, _ := authClients(c, follower, secretA)
	admin, adminCluster := authClients(c, follower, secretAdmin)
	reader, _ := authClients(c, follower, secretRead)
	anon, _ := authClients(c, follower, "")
	wrong, _ := authClients(c, follower, "rl_not-a-token")

	denied := func(err error, code connect.Code) {
		t.Helper()
		wantCode(t, err, code)
		for _, s := range []string{secretA, secretAdmin, secretRead, "rl_not-a-token"} {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("error %q names a secret", err)
			}
		}
	}
	_, err := acquire(ctx, anon, "x", 0, 0, "tenant-a/k")
	denied(err, connect.CodeUnauthenticated)
	_, err = acquire(ctx, wrong, "x", 0, 0, "tenant-a/k")
	denied(err, connect.CodeUnauthenticated)

	mustAcquire(t, ctx, tenant, "o", "tenant-a/k1")
	mustAcquire(t, ctx, tenant, "o", "tenant-a/k2")
	mustAcquire(t, ctx, admin, "o", "tenant-b/k1")

	_, err = acquire(ctx, tenant, "o", 0, 0, "tenant-b/k2")
	denied(err, connect.CodePermissionDenied)
	_, err = acquire(ctx, tenant, "o", 0, 0, "tenant-a/k3", "tenant-b/k3") // one key outside: all refused
	denied(err, connect.CodePermissionDenied)
	_, err = tenant.Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{"tenant-b/k1"}, OwnerId: "o"}))
	denied(err, connect.CodePermissionDenied)
	_, err = tenant.GetLock(ctx, connect.NewRequest(&raftlockv1.GetLockRequest{Key: "tenant-b/k1"}))
	denied(err, connect.CodePermissionDenied)
	_, err = tenant.ListLocks(ctx, connect.NewRequest(&raftlockv1.ListLocksRequest{}))
	denied(err, connect.CodePermissionDenied)
	list, err := tenant.ListLocks(ctx, connect.NewRequest(&raftlockv1.ListLocksRequest{Prefix: "tenant-a/"}))
	if err != nil || len(list.Msg.Locks) != 2 {
		t.Fatalf("tenant list = %v, %v", list, err)
	}
	_, err = tenant.ForceRelease(ctx, connect.NewRequest(&raftlockv1.ForceReleaseRequest{Keys: []string{"tenant-a/k1"}}))
	denied(err, connect.CodePermissionDenied)
	_, err = reader.Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{Keys: []string{"tenant-a/k9"}}))
	denied(err, connect.CodePermissionDenied)
	if l := getLock(t, ctx, reader, "tenant-b/k1"); l.GetOwnerId() != "o" {
		t.Fatalf("reader get = %+v", l)
	}
	_, err = c.ClusterClient(follower).TransferLeadership(ctx, connect.NewRequest(&raftlockv1.TransferLeadershipRequest{}))
	denied(err, connect.CodeUnauthenticated)

	// ReleaseAll under a restricted token frees only that token's keys,
	// even though the owner holds tenant-b/ keys too.
	ra, err := tenant.ReleaseAll(ctx, connect.NewRequest(&raftlockv1.ReleaseAllRequest{OwnerId: "o"}))
	if err != nil || ra.Msg.ReleasedCount != 2 {
		t.Fatalf("tenant release all = %v, %v", ra, err)
	}
	if l := getLock(t, ctx, admin, "tenant-b/k1"); l.GetOwnerId() != "o" {
		t.Fatalf("tenant-b/k1 after tenant-a's ReleaseAll = %+v", l)
	}

	// Admin verbs: membership and forced release.
	if _, err := adminCluster.Status(ctx, connect.NewRequest(&raftlockv1.StatusRequest{})); err != nil {
		t.Fatal(err)
	}
	fr, err := admin.ForceRelease(ctx, connect.NewRequest(&raftlockv1.ForceReleaseRequest{Keys: []string{"tenant-b/k1"}}))
	if err != nil || fr.Msg.ReleasedCount != 1 {
		t.Fatalf("admin force release = %v, %v", fr, err)
	}
}

// Tokens are only accepted over TLS.
func TestAuthNeedsTLS(t *testing.T) {
	cfg := cluster.DefaultConfig()
	cfg.ID, cfg.Advertise, cfg.AuthTokens = "n1", "127.0.0.1:1", tokenFile(t)
	err := cfg.Validate()
	if err == nil || !errors.Is(err, cluster.ErrInvalidConfig) || !strings.Contains(err.Error(), "--auth-tokens") {
		t.Fatalf("Validate = %v", err)
	}
}
