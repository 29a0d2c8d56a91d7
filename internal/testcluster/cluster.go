package testcluster

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Errors of a process cluster.
var (
	// ErrNotRunning: the node has no live process.
	ErrNotRunning = errors.New("node is not running")
	// ErrRunning: the node still has a live process (Restart, Wipe).
	ErrRunning = errors.New("node is running")
	// ErrNoLeader: the nodes asked do not agree on one leader that says
	// it leads and is ready.
	ErrNoLeader = errors.New("no agreed leader")
	// ErrDiverged: two replicas at the same applied index have different
	// table hashes.
	ErrDiverged = errors.New("replicas diverged")
	// ErrNoCommonIndex: the replicas were never seen at one applied index
	// before the deadline.
	ErrNoCommonIndex = errors.New("no common applied index")
	// ErrBadConfig: the Config cannot describe a cluster; the text names
	// the field.
	ErrBadConfig = errors.New("bad cluster config")
)

// DefaultStopTimeout bounds a graceful stop (SIGTERM) before the node is
// killed.
const DefaultStopTimeout = 15 * time.Second

// Config describes a process cluster for Start. New fills one in for tests.
type Config struct {
	// Nodes is the number of founding nodes, n1 … nN, started with one
	// --initial-cluster.
	Nodes int
	// Binary is the node binary every node runs unless its NodeOptions
	// name another.
	Binary string
	// Dir holds one directory per node: Dir/<id>/data (the data
	// directory), Dir/<id>/node.log (stdout and stderr, appended across
	// restarts) and, with Journal, Dir/<id>/journal.jsonl.
	Dir string
	// Addrs are the nodes' host:port, one per node. Empty: ports picked
	// free on 127.0.0.1. Given: Start first checks that no other process
	// holds them.
	Addrs []string
	// Args are extra flags for every node, after the harness's own.
	Args []string
	// Env are extra environment variables (NAME=value) for every node.
	Env []string
	// Node holds per-node options by index; it may be shorter than Nodes.
	Node []NodeOptions
	// Debug starts the nodes with --debug: /debug/state (which EnsureSame
	// and SameState read) and /debug/pprof.
	Debug bool
	// Journal starts the nodes with --debug-journal Dir/<id>/journal.jsonl.
	Journal bool
	// TLSDir holds ca.crt, node.crt/node.key and client.crt/client.key
	// (cluster/certs.DevSet): the nodes then speak TLS only, and the
	// harness trusts the CA and presents the client certificate.
	TLSDir string
	// TokenFile is an --auth-tokens file for every node (needs TLSDir);
	// Token is the secret the harness's own calls send.
	TokenFile, Token string
	// SecurityFromEnv gives TLSDir's files and TokenFile to the nodes as
	// RAFTLOCK_TLS_CERT, RAFTLOCK_TLS_KEY, RAFTLOCK_TLS_CA and
	// RAFTLOCK_AUTH_TOKENS instead of flags.
	SecurityFromEnv bool
	// StopTimeout bounds a graceful stop; 0: DefaultStopTimeout.
	StopTimeout time.Duration
	// Logf, if set, receives one line per lifecycle event (start, kill…).
	Logf func(format string, args ...any)
}

// NodeOptions are one node's own settings.
type NodeOptions struct {
	// Binary replaces Config.Binary for this node (an older build, say).
	Binary string
	// Args are extra flags, after Config.Args.
	Args []string
	// Env are extra environment variables, after Config.Env.
	Env []string
}

func (cfg *Config) validate() error {
	switch {
	case cfg.Nodes < 1:
		return fmt.Errorf("%w: Nodes must be at least 1, got %d", ErrBadConfig, cfg.Nodes)
	case cfg.Binary == "" && len(cfg.Node) < cfg.Nodes:
		return fmt.Errorf("%w: Binary is empty", ErrBadConfig)
	case cfg.Dir == "":
		return fmt.Errorf("%w: Dir is empty", ErrBadConfig)
	case len(cfg.Addrs) != 0 && len(cfg.Addrs) != cfg.Nodes:
		return fmt.Errorf("%w: Addrs has %d addresses for %d nodes", ErrBadConfig, len(cfg.Addrs), cfg.Nodes)
	case len(cfg.Node) > cfg.Nodes:
		return fmt.Errorf("%w: Node has options for %d nodes, the cluster has %d", ErrBadConfig, len(cfg.Node), cfg.Nodes)
	case cfg.TokenFile != "" && cfg.TLSDir == "":
		return fmt.Errorf("%w: TokenFile needs TLSDir (the nodes refuse tokens without TLS)", ErrBadConfig)
	}
	for i := range cfg.Nodes {
		if cfg.Binary == "" && cfg.Node[i].Binary == "" {
			return fmt.Errorf("%w: no Binary for node %d", ErrBadConfig, i)
		}
	}
	return nil
}

// Cluster is a set of node processes.
type Cluster struct {
	// Endpoints reaches the nodes' HTTP API (Status, /debug/state, the
	// agreed leader).
	*Endpoints
	cfg   Config
	nodes []*node
	// t is set by New; the helpers that wait or fail (Leader, Followers,
	// WaitFor, EnsureSame) need it.
	t testing.TB
}

// Start lays the cluster out under cfg.Dir and starts every node. It does
// not wait for a leader. On error, nodes already started are stopped.
func Start(cfg Config) (*Cluster, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	addrs := cfg.Addrs
	if len(addrs) == 0 {
		ports, err := FreePorts(cfg.Nodes)
		if err != nil {
			return nil, err
		}
		for _, p := range ports {
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
		}
	} else if err := checkFree(addrs); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg}
	var peers []string
	for i, a := range addrs {
		id := fmt.Sprintf("n%d", i+1)
		dir := filepath.Join(cfg.Dir, id)
		n := &node{id: id, addr: a, dir: dir, dataDir: filepath.Join(dir, "data"), logFile: filepath.Join(dir, "node.log")}
		if cfg.Journal {
			n.journal = filepath.Join(dir, "journal.jsonl")
		}
		if i < len(cfg.Node) {
			n.opts = cfg.Node[i]
		}
		c.nodes = append(c.nodes, n)
		peers = append(peers, id+"="+a)
	}
	initial := strings.Join(peers, ",")
	for _, n := range c.nodes {
		n.initialCluster = initial
	}
	hc, scheme, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	c.Endpoints = &Endpoints{HTTP: hc}
	for _, n := range c.nodes {
		c.Endpoints.URLs = append(c.Endpoints.URLs, scheme+"://"+n.addr)
	}
	for i := range c.nodes {
		if err := c.start(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// checkFree fails if another process listens on one of addrs (another
// cluster or fault run, say).
func checkFree(addrs []string) error {
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is taken (is another cluster or fault run using it?): %w", a, err)
		}
		ln.Close()
	}
	return nil
}

// httpClient is the harness's own client: TLS with the client certificate
// and the harness token when the cluster has them.
func (c *Cluster) httpClient() (*http.Client, string, error) {
	hc := &http.Client{Timeout: 3 * time.Second}
	if c.cfg.TLSDir == "" {
		return hc, "http", nil
	}
	tc, err := ClientTLS(c.cfg.TLSDir)
	if err != nil {
		return nil, "", err
	}
	var rt http.RoundTripper = &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	if c.cfg.Token != "" {
		rt = Bearer(c.cfg.Token, rt)
	}
	hc.Transport = rt
	return hc, "https", nil
}

// Bearer returns a RoundTripper that adds "Authorization: Bearer token"
// to every request it passes to base.
func Bearer(token string, base http.RoundTripper) http.RoundTripper {
	return bearer{token: token, base: base}
}

type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// Len returns the number of nodes, running or not.
func (c *Cluster) Len() int { return len(c.nodes) }

// ID returns node i's id (n1, n2, …).
func (c *Cluster) ID(i int) string { return c.nodes[i].id }

// Addr returns node i's host:port.
func (c *Cluster) Addr(i int) string { return c.nodes[i].addr }

// Addrs returns every node's host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// URL returns node i's base URL: http(s)://host:port.
func (c *Cluster) URL(i int) string { return c.Endpoints.URLs[i] }

// DataDir returns node i's data directory.
func (c *Cluster) DataDir(i int) string { return c.nodes[i].dataDir }

// LogFile returns the file node i's stdout and stderr go to.
func (c *Cluster) LogFile(i int) string { return c.nodes[i].logFile }

// JournalFile returns node i's journal ("" without Config.Journal).
func (c *Cluster) JournalFile(i int) string { return c.nodes[i].journal }

// TLSDir returns the directory of the cluster's TLS material ("" without
// TLS).
func (c *Cluster) TLSDir() string { return c.cfg.TLSDir }

// TokenFile is the nodes' --auth-tokens file ("" without tokens).
func (c *Cluster) TokenFile() string { return c.cfg.TokenFile }

// Binary returns the binary node i runs (or will run at its next start).
func (c *Cluster) Binary(i int) string {
	if b := c.nodes[i].options().Binary; b != "" {
		return b
	}
	return c.cfg.Binary
}

// Env returns the environment variables the harness adds for node i
// (Config.Env, the node's own, and the security settings with
// SecurityFromEnv), e.g. to run `node healthcheck` as the node sees it.
func (c *Cluster) Env(i int) []string {
	_, env := c.command(i)
	return env
}

// SetNode replaces node i's options from its next start on (Restart): a
// rolling upgrade stops a node, gives it the new binary, and restarts it
// on the same data and address.
func (c *Cluster) SetNode(i int, o NodeOptions) {
	n := c.nodes[i]
	n.mu.Lock()
	n.opts = o
	n.mu.Unlock()
}

// RunningNodes returns the indexes of the nodes with a live (possibly
// paused) process.
func (c *Cluster) RunningNodes() []int {
	var out []int
	for i := range c.nodes {
		if c.Running(i) {
			out = append(out, i)
		}
	}
	return out
}

// Log returns up to the last max bytes of node i's log.
func (c *Cluster) Log(i, max int) string {
	b, err := os.ReadFile(c.nodes[i].logFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
		if j := slices.Index(b, '\n'); j >= 0 {
			b = b[j+1:]
		}
		return "…\n" + string(b)
	}
	return string(b)
}

// Close stops every node (SIGCONT first for paused ones, then SIGTERM; a
// node that does not exit within the stop timeout is killed).
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Stop(i) }()
	}
	wg.Wait()
}

// HTTPClient returns the harness's HTTP client: TLS with the client
// certificate, and its token, when the cluster has them.
func (c *Cluster) HTTPClient() *http.Client { return c.Endpoints.HTTP }
