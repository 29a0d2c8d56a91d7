//go:build docker

package dockertest

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// TestLockctlInContainer protects the operator's tool inside the image:
// `docker exec <node> /lockctl` acquires a lock through another node (the
// cluster network's names), a second owner is refused with a non-zero
// exit, and release frees the key; the host API sees each step. With TLS
// and tokens, lockctl is given --tls-ca, a client certificate and the
// tenant token (the container's own RAFTLOCK_TLS_* would make it present
// the node certificate); without --token it is refused; and a bare
// `lockctl status`, as the README shows it, works from the container's
// environment.
func TestLockctlInContainer(t *testing.T) {
	img := buildImage(t)
	if !imageHasFile(t, img, "/lockctl") {
		t.Fatalf("lockctl not in the image %s: `make docker` copies bin/node and bin/lockctl into it", img)
	}
	forEachMode(t, testLockctlInContainer)
}

func testLockctlInContainer(t *testing.T, m mode) {
	c := newCluster(t, m)
	const key = tenantPrefix + "lockctl"
	if m.tls {
		c.lockctlFlags = []string{"--tls-ca", "/certs/ca.crt", "--tls-cert", "/certs/client.crt", "--tls-key", "/certs/client.key"}
		out, err := c.lockctlErr(0, "n2:7070", "acquire", "--owner", "ctl-a", key)
		if err == nil || !strings.Contains(out, "unauthenticated") {
			t.Fatalf("lockctl acquire over TLS without --token: err = %v, want a non-zero exit saying unauthenticated:\n%s", err, out)
		}
		c.lockctlFlags = append(c.lockctlFlags, "--token", secrets.tokens[tenantTokenName])
		out, err = c.lockctlErr(0, "n2:7070", "acquire", "--owner", "ctl-a", "tenant-b/lockctl")
		if err == nil || !strings.Contains(out, "permission denied") {
			t.Fatalf("lockctl acquire of a tenant-b key with the tenant-a token: err = %v, want a non-zero exit saying permission denied:\n%s", err, out)
		}
	}

	out := c.lockctl(0, "n2:7070", "acquire", "--owner", "ctl-a", key)
	t.Logf("lockctl acquire: %s", out)
	held := c.getLock(key)
	if held == nil || held.OwnerId != "ctl-a" {
		t.Fatalf("after lockctl acquire, %s is %v, want held by ctl-a", key, held)
	}

	if out, err := c.lockctlErr(2, "n3:7070", "acquire", "--owner", "ctl-b", key); err == nil {
		t.Fatalf("lockctl acquire of a held key by another owner exited 0, want a non-zero exit:\n%s", out)
	}
	if got := c.getLock(key); got == nil || got.OwnerId != "ctl-a" || got.FencingToken != held.FencingToken {
		t.Fatalf("after the refused acquire, %s is %v, want still %v", key, got, held)
	}

	out = c.lockctl(1, "n1:7070", "release", "--owner", "ctl-a", key)
	t.Logf("lockctl release: %s", out)
	if got := c.getLock(key); got != nil {
		t.Fatalf("after lockctl release, %s is %v, want free", key, got)
	}

	out = c.lockctl(2, "n2:7070", "status")
	if strings.TrimSpace(out) == "" {
		t.Fatal("lockctl status printed nothing")
	}
	if m.tls {
		// What the README shows, with nothing but the container's
		// environment (RAFTLOCK_TLS_*: https, the node certificate).
		// lockctl exits non-zero unless the endpoint answered; its row
		// names the node.
		c.lockctlFlags = nil
		if out = c.lockctl(1, "n3:7070", "status"); !regexp.MustCompile(`(?m)^n3:7070\s+n3\s`).MatchString(out) {
			t.Fatalf("bare lockctl status in a TLS container:\n%s", out)
		}
	}
}

// lockctl runs /lockctl in node i's container against endpoints and fails
// the test if it exits non-zero.
func (c *cluster) lockctl(i int, endpoints string, args ...string) string {
	c.t.Helper()
	out, err := c.lockctlErr(i, endpoints, args...)
	if err != nil {
		c.t.Fatalf("lockctl %s in %s: %v\n%s", strings.Join(args, " "), c.container(nodes[i]), err, out)
	}
	return out
}

func (c *cluster) lockctlErr(i int, endpoints string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	full := append(append([]string{"exec", c.container(nodes[i]), "/lockctl", "--endpoints", endpoints}, c.lockctlFlags...), args...)
	return run(ctx, nil, "docker", full...)
}

// getLock is key as the cluster reports it through n1's host port, nil if
// it is free.
func (c *cluster) getLock(key string) *raftlockv1.Lock {
	c.t.Helper()
	resp, err := retry(c, func(ctx context.Context) (*connect.Response[raftlockv1.GetLockResponse], error) {
		return c.lock(0).GetLock(ctx, connect.NewRequest(&raftlockv1.GetLockRequest{Key: key}))
	})
	if err != nil {
		c.t.Fatalf("get %s: %v", key, err)
	}
	return resp.Msg.Lock
}
