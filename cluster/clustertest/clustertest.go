// Package clustertest runs in-process raftlock clusters for tests: real
// Raft on disk under t.TempDir(), real ports on 127.0.0.1, and a network
// layer that can cut links between nodes.
//
//	c := clustertest.New(t, 3)
//	leader := c.Leader()
//	c.Kill(leader)
//	c.WaitFor("a new leader", func() bool { return c.LeaderIndex() >= 0 })
package clustertest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster"
	"github.com/raftlock/raftlock/cluster/certs"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// Option changes how a cluster is started.
type Option func(*settings)

type settings struct {
	configs []func(*cluster.Config)
	tls     bool
}

// WithConfig applies fn to each node's configuration before it starts.
func WithConfig(fn func(*cluster.Config)) Option {
	return func(s *settings) { s.configs = append(s.configs, fn) }
}

// WithTLS turns TLS on: a development CA, one node certificate for
// 127.0.0.1 and localhost shared by all nodes, and a client certificate the
// cluster's API clients present.
func WithTLS() Option { return func(s *settings) { s.tls = true } }

// Cluster is a set of in-process nodes.
type Cluster struct {
	t        testing.TB
	net      *Network
	members  []*member
	settings settings
	logOut   *testWriter
	// CertDir holds ca.crt, node.crt/key and client.crt/key with WithTLS.
	CertDir string
}

type member struct {
	id, addr, dir string
	node          *cluster.Node
}

// New starts n founding nodes on 127.0.0.1 with a shared initial cluster
// and stops them when the test ends. It does not wait for a leader.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, net: NewNetwork(), logOut: &testWriter{t: t}}
	for _, o := range opts {
		o(&c.settings)
	}
	if c.settings.tls {
		c.CertDir = t.TempDir()
		if err := certs.DevSet(c.CertDir, []string{"127.0.0.1", "localhost"}, 24*time.Hour); err != nil {
			t.Fatalf("certificates: %v", err)
		}
	}
	lns := make([]net.Listener, n)
	var peers []cluster.Peer
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		lns[i] = ln
		m := &member{id: fmt.Sprintf("n%d", i+1), addr: ln.Addr().String(), dir: t.TempDir()}
		c.members = append(c.members, m)
		peers = append(peers, cluster.Peer{ID: m.id, Address: m.addr})
	}
	t.Cleanup(c.stopAll)
	for i, m := range c.members {
		c.start(m, lns[i], func(cfg *cluster.Config) { cfg.InitialCluster = peers })
	}
	return c
}

// AddNode starts a new, empty node that joins the cluster through node
// via, and returns its index.
func (c *Cluster) AddNode(via int) int {
	c.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatalf("listen: %v", err)
	}
	m := &member{id: fmt.Sprintf("n%d", len(c.members)+1), addr: ln.Addr().String(), dir: c.t.TempDir()}
	c.members = append(c.members, m)
	join := c.members[via].addr
	c.start(m, ln, func(cfg *cluster.Config) { cfg.Join = join })
	return len(c.members) - 1
}

func (c *Cluster) start(m *member, ln net.Listener, extra func(*cluster.Config)) {
	c.t.Helper()
	cfg := cluster.DefaultConfig()
	cfg.ID, cfg.Advertise, cfg.DataDir, cfg.Listener = m.id, m.addr, m.dir, ln
	cfg.Logger = slog.New(slog.NewTextHandler(c.logOut, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test_node", m.id)
	cfg.Dialer = c.net.Dialer(m.addr)
	if c.settings.tls {
		cfg.TLS = &cluster.TLS{CertFile: filepath.Join(c.CertDir, "node.crt"), KeyFile: filepath.Join(c.CertDir, "node.key"), CAFile: filepath.Join(c.CertDir, "ca.crt")}
	}
	for _, fn := range c.settings.configs {
		fn(&cfg)
	}
	if extra != nil {
		extra(&cfg)
	}
	n, err := cluster.Start(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", m.id, err)
	}
	m.node = n
}

func (c *Cluster) stopAll() {
	var wg sync.WaitGroup
	for _, m := range c.members {
		if m.node != nil {
			wg.Add(1)
			go func(n *cluster.Node) { defer wg.Done(); _ = n.Close() }(m.node)
		}
	}
	wg.Wait()
	c.logOut.done.Store(true)
}

// Len returns the number of nodes, running or not.
func (c *Cluster) Len() int { return len(c.members) }

// Node returns node i, or nil if it is stopped.
func (c *Cluster) Node(i int) *cluster.Node { return c.members[i].node }

// Addr returns the address of node i.
func (c *Cluster) Addr(i int) string { return c.members[i].addr }

// ID returns the id of node i.
func (c *Cluster) ID(i int) string { return c.members[i].id }

// Addrs returns the addresses of all nodes.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.addr)
	}
	return out
}

// Running returns the indexes of the running nodes.
func (c *Cluster) Running() []int {
	var out []int
	for i, m := range c.members {
		if m.node != nil {
			out = append(out, i)
		}
	}
	return out
}

// LeaderIndex returns the running node that leads and has taken office, or
// -1 if there is none (or more than one claims it).
func (c *Cluster) LeaderIndex() int {
	found := -1
	for _, i := range c.Running() {
		if c.members[i].node.IsLeader() {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// Leader waits for a leader and returns its index.
func (c *Cluster) Leader() int {
	c.t.Helper()
	var l int
	c.WaitFor("a leader", func() bool { l = c.LeaderIndex(); return l >= 0 })
	return l
}

// Followers waits for a leader and returns the other running nodes.
func (c *Cluster) Followers() []int {
	c.t.Helper()
	l := c.Leader()
	var out []int
	for _, i := range c.Running() {
		if i != l {
			out = append(out, i)
		}
	}
	return out
}

// Kill stops node i abruptly (no leadership hand-off, no draining).
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	m := c.members[i]
	if m.node == nil {
		return
	}
	c.net.CloseConns(m.addr)
	_ = m.node.Close()
	m.node = nil
}

// Stop stops node i gracefully.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	m := c.members[i]
	if m.node == nil {
		return
	}
	if err := m.node.Shutdown(context.Background()); err != nil {
		c.t.Errorf("shutdown %s: %v", m.id, err)
	}
	m.node = nil
}

// Restart starts a stopped node i again on the same address and data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	m := c.members[i]
	if m.node != nil {
		c.t.Fatalf("restart %s: still running", m.id)
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", m.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port may linger briefly after close
	}
	if err != nil {
		c.t.Fatalf("restart %s: listen: %v", m.id, err)
	}
	c.start(m, ln, nil)
}

// Wipe deletes node i's data; the node must be stopped.
func (c *Cluster) Wipe(i int) {
	c.t.Helper()
	m := c.members[i]
	if m.node != nil {
		c.t.Fatalf("wipe %s: still running", m.id)
	}
	if err := os.RemoveAll(m.dir); err != nil {
		c.t.Fatal(err)
	}
}

// Partition cuts every link between nodes of different groups. Nodes not
// named in any group keep their links.
func (c *Cluster) Partition(groups ...[]int) {
	var sets [][]string
	for _, g := range groups {
		var s []string
		for _, i := range g {
			s = append(s, c.members[i].addr)
		}
		sets = append(sets, s)
	}
	c.net.Partition(sets...)
}

// Heal restores every link.
func (c *Cluster) Heal() { c.net.Heal() }

// WaitFor polls cond every 10 ms until it holds, failing the test after
// 20 seconds.
func (c *Cluster) WaitFor(what string, cond func() bool) {
	c.t.Helper()
	WaitFor(c.t, 20*time.Second, what, cond)
}

// WaitFor polls cond every 10 ms until it holds, failing t after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// EnsureSame fails the test unless every replica (the running nodes that
// are members in the leader's configuration) reaches one applied index
// with the same table hash within 20 seconds: the state machine is
// deterministic, so replicas that applied the same entries must agree
// (testcluster.WaitSame, the check the process harness and the fault
// suite use too).
func (c *Cluster) EnsureSame() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	summary, err := testcluster.WaitSame(ctx, func(context.Context) (map[string]testcluster.State, error) {
		l := c.LeaderIndex()
		if l < 0 {
			return nil, errors.New("no leader")
		}
		out := map[string]testcluster.State{}
		for _, m := range c.members[l].node.Status().Members {
			for _, i := range c.Running() {
				if c.members[i].id == m.Id {
					index, hash := c.members[i].node.TableHash()
					out[m.Id] = testcluster.State{Index: index, Hash: hash}
				}
			}
		}
		return out, nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Log(summary)
}

// HTTPClient returns an HTTP client that speaks h2c (HTTP/2 without TLS),
// for API clients in tests. (With HTTP/1.1 enabled too, Go's transport would
// pick HTTP/1.1 for http:// URLs.)
func HTTPClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}}
}

// ClientTLS returns the TLS configuration of the cluster's API clients
// (trusting the CA, presenting the client certificate), or nil without
// TLS.
func (c *Cluster) ClientTLS() *tls.Config {
	if !c.settings.tls {
		return nil
	}
	tc, err := client.TLSFromFiles(filepath.Join(c.CertDir, "ca.crt"), filepath.Join(c.CertDir, "client.crt"), filepath.Join(c.CertDir, "client.key"))
	if err != nil {
		c.t.Fatal(err)
	}
	return tc
}

// APIClient returns the HTTP client and base URL for node i's API.
func (c *Cluster) APIClient(i int) (*http.Client, string) {
	if !c.settings.tls {
		return HTTPClient(), "http://" + c.members[i].addr
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p, TLSClientConfig: c.ClientTLS()}}, "https://" + c.members[i].addr
}

// LockClient returns a raftlock.v1 LockService client for node i (gRPC
// unless other options are given).
func (c *Cluster) LockClient(i int, opts ...connect.ClientOption) raftlockv1connect.LockServiceClient {
	if len(opts) == 0 {
		opts = []connect.ClientOption{connect.WithGRPC()}
	}
	hc, base := c.APIClient(i)
	return raftlockv1connect.NewLockServiceClient(hc, base, opts...)
}

// ClusterClient returns a raftlock.v1 ClusterService client for node i.
func (c *Cluster) ClusterClient(i int) raftlockv1connect.ClusterServiceClient {
	hc, base := c.APIClient(i)
	return raftlockv1connect.NewClusterServiceClient(hc, base, connect.WithGRPC())
}

// testWriter sends node logs to t.Log, so they show only when a test
// fails (or with -v), and drops them once the cluster is stopped.
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = (*testWriter)(nil)
