package cluster_test

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	peerv1 "github.com/raftlock/raftlock/api/gen/raftlock/peer/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/peer/v1/peerv1connect"
	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster"
	"github.com/raftlock/raftlock/cluster/certs"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// A TLS cluster elects a leader over mutual-TLS Raft, forwards over TLS,
// and serves the API over TLS (gRPC and Connect JSON over HTTP/1.1).
func TestTLSCluster(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.WithTLS())
	ctx := ctxT(t)
	follower := c.Followers()[0]
	a := mustAcquire(t, ctx, c.LockClient(follower), "alice", "tls-key")
	_, err := acquire(ctx, c.LockClient(follower, connect.WithProtoJSON()), "bob", 0, 0, "tls-key")
	wantCode(t, err, connect.CodeAborted)
	if l := getLock(t, ctx, c.LockClient(c.Followers()[1]), "tls-key"); l.FencingToken != a.FencingToken {
		t.Fatalf("read through the other follower: %+v", l)
	}
}

// With --tls-client-auth none a follower still forwards to the leader: the
// leader asks for (without requiring) a certificate, so the forwarding
// node's is shown and accepted, while an API caller needs none.
func TestTLSClientAuthNoneStillForwards(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.WithTLS(), clustertest.WithConfig(func(cfg *cluster.Config) { cfg.TLS.ClientAuth = "none" }))
	ctx := ctxT(t)
	trust, err := client.TLSFromFiles(filepath.Join(c.CertDir, "ca.crt"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: trust}}
	for _, i := range c.Followers() {
		lc := raftlockv1connect.NewLockServiceClient(noCert, "https://"+c.Addr(i), connect.WithProtoJSON())
		mustAcquire(t, ctx, lc, "alice", "none-"+c.ID(i))
	}
}

// With TLS on, plain-text API calls and plain-text Raft streams are
// refused, and so is anyone without a node certificate on the Raft and
// node-to-node paths.
func TestTLSRefusesPlainTextAndNonNodes(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.WithTLS())
	ctx := ctxT(t)
	leader := c.Leader()
	addr := c.Addr(leader)

	// Plain-text HTTP/1.1 to the TLS port.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Post("http://"+addr+"/raftlock.v1.LockService/Acquire",
		"application/json", strings.NewReader(`{"keys":["x"]}`))
	if err == nil {
		// Go's TLS server tells an HTTP client it spoke plain text to an
		// HTTPS port, and serves nothing.
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS server") {
			t.Fatalf("plain-text API call answered %s: %s", resp.Status, body)
		}
	}
	if l := getLock(t, ctx, c.LockClient(leader), "x"); l != nil {
		t.Fatalf("the plain-text acquire took effect: %+v", l)
	}

	// A plain-text Raft stream: the marker byte and an AppendEntries-ish
	// payload get no answer, and the connection is closed.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := conn.Write([]byte{0x01, 0x00, 0x81, 0xa4, 'T', 'e', 'r', 'm'}); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadAll(conn); len(n) != 0 && err == nil {
		t.Fatalf("plain-text Raft stream got %d bytes back", len(n))
	}
	conn.Close()

	// A client certificate (clientAuth only) may call the API but not the
	// node-to-node API.
	hc, base := c.APIClient(leader)
	pc := peerv1connect.NewPeerServiceClient(hc, base, connect.WithGRPC())
	_, err = pc.ReadIndex(ctx, connect.NewRequest(&peerv1.ReadIndexRequest{}))
	wantCode(t, err, connect.CodePermissionDenied)

	// A TLS Raft stream with a client certificate fails the handshake.
	cfg := c.ClientTLS()
	cfg.NextProtos = []string{"raftlock-raft/1"}
	cfg.ServerName = "127.0.0.1"
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err == nil {
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = tc.Write([]byte{0x01})
		if err == nil {
			_, err = tc.Read(make([]byte, 1))
		}
		tc.Close()
	}
	if err == nil {
		t.Fatal("a Raft stream with a client certificate was accepted")
	}
}

// A node whose certificate comes from another CA cannot join.
func TestTLSForeignNodeCannotJoin(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.WithTLS())
	ctx := ctxT(t)
	leader := c.Leader()

	foreign := t.TempDir()
	if err := certs.DevSet(foreign, []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.DefaultConfig()
	cfg.ID, cfg.Listener, cfg.DataDir, cfg.Join = "intruder", ln, t.TempDir(), c.Addr(leader)
	refused := &lineCounter{match: "join failed"}
	cfg.Logger = slog.New(slog.NewTextHandler(refused, nil))
	cfg.TLS = &cluster.TLS{CertFile: filepath.Join(foreign, "node.crt"), KeyFile: filepath.Join(foreign, "node.key"), CAFile: filepath.Join(foreign, "ca.crt")}
	n, err := cluster.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// Until the intruder has been refused three times, membership must
	// stay at three at every look.
	c.WaitFor("three refused join attempts", func() bool {
		if got := len(c.Node(leader).Status().Members); got != 3 {
			t.Fatalf("members = %d: the foreign node joined", got)
		}
		return refused.n.Load() >= 3
	})
	if got := len(c.Node(leader).Status().Members); got != 3 {
		t.Fatalf("members = %d: the foreign node joined", got)
	}
	// And the cluster still works.
	mustAcquire(t, ctx, c.LockClient(leader), "alice", "after-intruder")

	// The foreign CA's client certificate is refused at the handshake.
	foreignCert, err := client.TLSFromFiles(filepath.Join(c.CertDir, "ca.crt"), filepath.Join(foreign, "client.crt"), filepath.Join(foreign, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: foreignCert}}
	cl := raftlockv1connect.NewLockServiceClient(hc, "https://"+c.Addr(leader), connect.WithGRPC())
	_, err = cl.GetLock(ctx, connect.NewRequest(&raftlockv1.GetLockRequest{Key: "x"}))
	if err == nil {
		t.Fatal("a client certificate from a foreign CA was accepted")
	}
}

// lineCounter counts the log lines written to it that contain match.
type lineCounter struct {
	match string
	n     atomic.Int32
}

func (w *lineCounter) Write(p []byte) (int, error) {
	w.n.Add(int32(strings.Count(string(p), w.match)))
	return len(p), nil
}
