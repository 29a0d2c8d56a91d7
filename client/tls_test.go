package client_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster"
	"github.com/raftlock/raftlock/cluster/certs"
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

// TLSFromFiles trusts the CA file, presents the key pair when one is
// given, and names what is wrong with the files otherwise.
func TestTLSFromFiles(t *testing.T) {
	dir := t.TempDir()
	if err := certs.DevSet(dir, []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	ca, crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")

	tc, err := client.TLSFromFiles(ca, "", "")
	if err != nil || tc.RootCAs == nil || len(tc.Certificates) != 0 || tc.MinVersion != tls.VersionTLS12 {
		t.Fatalf("CA only: %+v, %v; want a pool, no certificate, TLS 1.2 or later", tc, err)
	}
	if tc, err = client.TLSFromFiles(ca, crt, key); err != nil || len(tc.Certificates) != 1 {
		t.Fatalf("with a key pair: %v, %v certificates; want one", err, len(tc.Certificates))
	}
	if _, err := client.TLSFromFiles(filepath.Join(dir, "missing.crt"), "", ""); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing CA file: %v, want fs.ErrNotExist", err)
	}
	if _, err := client.TLSFromFiles(key, "", ""); !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), key) {
		t.Fatalf("a CA file without a certificate: %v, want ErrInvalidArgument naming %s", err, key)
	}
	if _, err := client.TLSFromFiles(ca, "", key); err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("a key without its certificate: %v, want an error naming the files", err)
	}
}
