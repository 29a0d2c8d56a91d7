package client_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// Over TLS with bearer tokens the client works through any node, and the
// two refusals come back as their own named errors.
func TestTLSAndBearerToken(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	b, _ := json.Marshal(cluster.TokenFile{Tokens: []cluster.Token{
		{Name: "a", SHA256: cluster.HashToken("secret-a"), Prefixes: []string{"a/"}, Verbs: []string{"acquire", "read"}},
	}})
	if err := os.WriteFile(tokens, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := clustertest.New(t, 3, clustertest.WithTLS(), clustertest.WithConfig(func(cfg *cluster.Config) { cfg.AuthTokens = tokens }))
	c.Leader()
	ctx := testCtx(t)
	addrs := []string{c.Addr(c.Followers()[0])} // a follower only: the client follows the leader hint over TLS

	cl := newClient(t, addrs, client.WithTLS(c.ClientTLS()), client.WithBearerToken("secret-a"))
	lk, err := cl.Acquire(ctx, []string{"a/job"}, client.WithOwner("me"))
	if err != nil {
		t.Fatalf("acquire over TLS with a token: %v", err)
	}
	if err := lk.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Acquire(ctx, []string{"b/job"}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("acquire outside the token's prefix: %v, want ErrPermissionDenied", err)
	}
	anon := newClient(t, addrs, client.WithTLS(c.ClientTLS()))
	if _, err := anon.Acquire(ctx, []string{"a/job"}); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("acquire without a token: %v, want ErrUnauthenticated", err)
	}
}
