// Package procs runs a raftlock cluster of real node processes for the
// fault suite: each node on its own loopback address (127.0.0.11, .12, …;
// Linux routes all of 127/8 to lo) with its own data directory, log file and
// journal, so faults can be aimed at one node by address or by pid.
package procs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors of the process cluster.
var (
	// ErrNotRunning: the node has no live process.
	ErrNotRunning = errors.New("node is not running")
	// ErrNoLeader: no single leader could be found in time.
	ErrNoLeader = errors.New("no leader")
)

// Config describes a process cluster.
type Config struct {
	// Binary is the node binary (see Build).
	Binary string
	// Nodes is the number of nodes (3 or 5).
	Nodes int
	// Dir holds each node's data directory, log and journal.
	Dir string
	// FirstIP is the last octet of the first node's 127.0.0.x address
	// (default 11).
	FirstIP int
	// Port is every node's port (default 7070; each node has its own IP).
	Port int
	// ExtraArgs are passed to every node (e.g. --unsafe-bug fencing).
	ExtraArgs []string
	// TLSDir, when set, holds ca.crt, node.crt/key and client.crt/key (see
	// cluster/certs.DevSet): the nodes then speak TLS only, and the
	// cluster's own calls present the client certificate.
	TLSDir string
}

// Node is one node process.
type Node struct {
	ID, IP, Addr          string
	DataDir, Log, Journal string
	mu                    sync.Mutex
	cmd                   *exec.Cmd
	exited                chan struct{}
	paused                bool
}

// Cluster is a set of node processes.
type Cluster struct {
	cfg    Config
	Nodes  []*Node
	http   *http.Client
	scheme string
}

// ClientTLS loads the client side of a TLSDir: trust ca.crt, present
// client.crt.
func ClientTLS(dir string) (*tls.Config, error) {
	pem, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no CA certificate", dir)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// Build compiles the node binary from the module at moduleDir into dir and
// returns its path.
func Build(ctx context.Context, moduleDir, dir string) (string, error) {
	out := filepath.Join(dir, "node")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/node")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build node: %w\n%s", err, b)
	}
	return out, nil
}

// New lays out a cluster; Start starts it.
func New(cfg Config) *Cluster {
	if cfg.FirstIP == 0 {
		cfg.FirstIP = 11
	}
	if cfg.Port == 0 {
		cfg.Port = 7070
	}
	c := &Cluster{cfg: cfg, http: &http.Client{Timeout: 2 * time.Second}, scheme: "http"}
	if cfg.TLSDir != "" {
		tc, err := ClientTLS(cfg.TLSDir)
		if err == nil {
			c.http.Transport = &http.Transport{TLSClientConfig: tc}
			c.scheme = "https"
		}
	}
	for i := range cfg.Nodes {
		ip := fmt.Sprintf("127.0.0.%d", cfg.FirstIP+i)
		id := fmt.Sprintf("n%d", i+1)
		d := filepath.Join(cfg.Dir, id)
		c.Nodes = append(c.Nodes, &Node{
			ID: id, IP: ip, Addr: fmt.Sprintf("%s:%d", ip, cfg.Port),
			DataDir: filepath.Join(d, "data"), Log: filepath.Join(d, "node.log"), Journal: filepath.Join(d, "journal.jsonl"),
		})
	}
	return c
}

// Addrs returns every node's address.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr)
	}
	return out
}

// IPs returns every node's IP.
func (c *Cluster) IPs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.IP)
	}
	return out
}

func (c *Cluster) initialCluster() string {
	var parts []string
	for _, n := range c.Nodes {
		parts = append(parts, n.ID+"="+n.Addr)
	}
	return strings.Join(parts, ",")
}

// Start starts every node. It first checks that no other process holds
// the nodes' addresses (another run of the suite, say).
func (c *Cluster) Start() error {
	for _, n := range c.Nodes {
		ln, err := net.Listen("tcp", n.Addr)
		if err != nil {
			return fmt.Errorf("%s: %s is taken (is another cluster or fault run using it?): %w", n.ID, n.Addr, err)
		}
		ln.Close()
	}
	for i := range c.Nodes {
		if err := c.StartNode(i); err != nil {
			return err
		}
	}
	return nil
}

// StartNode starts (or restarts) node i on its data directory.
func (c *Cluster) StartNode(i int) error {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%s: already running", n.ID)
	}
	if err := os.MkdirAll(n.DataDir, 0o750); err != nil {
		return err
	}
	logf, err := os.OpenFile(n.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	args := []string{
		"--id", n.ID, "--listen", n.Addr, "--data-dir", n.DataDir, "--initial-cluster", c.initialCluster(),
		"--debug", "--debug-journal", n.Journal, "--unsafe-clock-control", "--log-format", "json",
	}
	if d := c.cfg.TLSDir; d != "" {
		args = append(args, "--tls-cert", filepath.Join(d, "node.crt"), "--tls-key", filepath.Join(d, "node.key"),
			"--tls-ca", filepath.Join(d, "ca.crt"))
	}
	args = append(args, c.cfg.ExtraArgs...)
	cmd := exec.Command(c.cfg.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(logf, "# %s start: %s %s\n", time.Now().Format(time.RFC3339Nano), c.cfg.Binary, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start: %w", n.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	n.cmd, n.exited, n.paused = cmd, exited, false
	return nil
}

// Running reports whether node i has a live (possibly paused) process.
func (c *Cluster) Running(i int) bool {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Kill sends SIGKILL to node i and waits for it to die.
func (c *Cluster) Kill(i int) error {
	n := c.Nodes[i]
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return ErrNotRunning
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	return nil
}

// Terminate sends SIGTERM to node i and waits up to timeout for a graceful
// exit, then kills it.
func (c *Cluster) Terminate(i int, timeout time.Duration) error {
	n := c.Nodes[i]
	n.mu.Lock()
	cmd, exited, paused := n.cmd, n.exited, n.paused
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return ErrNotRunning
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(timeout):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("%s: no exit %s after SIGTERM; killed", n.ID, timeout)
	}
}

// Pause stops node i with SIGSTOP.
func (c *Cluster) Pause(i int) error { return c.signal(i, syscall.SIGSTOP, true) }

// Resume continues node i with SIGCONT.
func (c *Cluster) Resume(i int) error { return c.signal(i, syscall.SIGCONT, false) }

func (c *Cluster) signal(i int, sig syscall.Signal, paused bool) error {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return ErrNotRunning
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return err
	}
	n.paused = paused
	return nil
}

// Stop stops every node (SIGCONT first for paused ones, then SIGTERM).
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Terminate(i, 15*time.Second) }()
	}
	wg.Wait()
}

// Status is the subset of ClusterService/Status the suite uses.
type Status struct {
	ID            string `json:"id"`
	Role          string `json:"role"`
	LeaderID      string `json:"leaderId"`
	LeaderAddress string `json:"leaderAddress"`
	Term          string `json:"term"`
	Ready         bool   `json:"ready"`
}

// Status asks node i for its view of the cluster.
func (c *Cluster) Status(ctx context.Context, i int) (Status, error) {
	var st Status
	err := c.post(ctx, c.Nodes[i].Addr, "/raftlock.v1.ClusterService/Status", "{}", &st)
	return st, err
}

// DebugState is node i's /debug/state.
type DebugState struct {
	ID      string `json:"id"`
	Index   uint64 `json:"index"`
	Applied uint64 `json:"applied"`
	Hash    string `json:"hash"`
	Locks   int    `json:"locks"`
}

// State fetches node i's /debug/state.
func (c *Cluster) State(ctx context.Context, i int) (DebugState, error) {
	return FetchState(ctx, c.http, c.scheme+"://"+c.Nodes[i].Addr)
}

// SetClock skews node i's clocks: a wall-clock offset and a monotonic
// rate (1 = true).
func (c *Cluster) SetClock(ctx context.Context, i int, offset time.Duration, rate float64) error {
	return SetClock(ctx, c.http, c.scheme+"://"+c.Nodes[i].Addr, offset, rate)
}

// FetchState reads /debug/state of the node at base (scheme://host:port).
func FetchState(ctx context.Context, hc *http.Client, base string) (DebugState, error) {
	var st DebugState
	b, err := do(ctx, hc, http.MethodGet, base+"/debug/state")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// SetClock sets the wall-clock offset and monotonic rate of the node at
// base through its /debug/clock (nodes started with --unsafe-clock-control).
func SetClock(ctx context.Context, hc *http.Client, base string, offset time.Duration, rate float64) error {
	_, err := do(ctx, hc, http.MethodPost, fmt.Sprintf("%s/debug/clock?offset=%s&rate=%g", base, offset, rate))
	return err
}

// do sends a body-less request and returns the body of a 200 answer.
func do(ctx context.Context, hc *http.Client, method, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// Leader returns the index of the node every running, responsive node
// names as leader (and which says it leads), or an error.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	leader := ""
	for i := range c.Nodes {
		if !c.Running(i) {
			continue
		}
		st, err := c.Status(ctx, i)
		if err != nil {
			continue
		}
		if st.LeaderID == "" || (leader != "" && st.LeaderID != leader) {
			return -1, ErrNoLeader
		}
		leader = st.LeaderID
	}
	for i, n := range c.Nodes {
		if n.ID == leader {
			st, err := c.Status(ctx, i)
			if err == nil && st.Role == "leader" {
				return i, nil
			}
		}
	}
	return -1, ErrNoLeader
}

// WaitLeader polls until Leader succeeds or ctx ends.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	for {
		if l, err := c.Leader(ctx); err == nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) post(ctx context.Context, addr, path, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.scheme+"://"+addr+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %s: %s", addr, path, resp.Status, b)
	}
	return json.Unmarshal(b, out)
}

// Size returns the number of nodes.
func (c *Cluster) Size() int { return len(c.Nodes) }

// Restart starts a stopped node again on its data.
func (c *Cluster) Restart(i int) error { return c.StartNode(i) }
