package testcluster

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/cluster/certs"
	"github.com/raftlock/raftlock/cluster/tokens"
)

// Bounds of the test helpers. Every wait polls its condition.
const (
	// DefaultWait bounds Leader, Followers, WaitFor and EnsureSame.
	DefaultWait = 30 * time.Second
	// pollEvery is how often a wait tries again.
	pollEvery = 20 * time.Millisecond
	// logTail is how much of each node's log a failed test shows.
	logTail = 64 << 10
)

// Option changes how New starts a cluster.
type Option func(*settings)

type settings struct {
	cfg    Config
	tls    bool
	tokens []tokens.Token
}

// WithArgs adds flags to every node.
func WithArgs(args ...string) Option {
	return func(s *settings) { s.cfg.Args = append(s.cfg.Args, args...) }
}

// WithEnv adds environment variables (NAME=value) to every node.
func WithEnv(env ...string) Option {
	return func(s *settings) { s.cfg.Env = append(s.cfg.Env, env...) }
}

// WithNode sets node i's own options (binary, flags, environment).
func WithNode(i int, o NodeOptions) Option {
	return func(s *settings) {
		for len(s.cfg.Node) <= i {
			s.cfg.Node = append(s.cfg.Node, NodeOptions{})
		}
		s.cfg.Node[i] = o
	}
}

// WithBinary runs every node from bin instead of the module's own build.
func WithBinary(bin string) Option { return func(s *settings) { s.cfg.Binary = bin } }

// WithJournal starts the nodes with --debug-journal (JournalFile).
func WithJournal() Option { return func(s *settings) { s.cfg.Journal = true } }

// WithAddrs gives the nodes these host:port addresses (one per node)
// instead of free ports on 127.0.0.1: e.g. a loopback IP of their own each
// (127.0.0.x; Linux routes all of 127/8 to lo).
func WithAddrs(addrs ...string) Option {
	return func(s *settings) { s.cfg.Addrs = append([]string(nil), addrs...) }
}

// WithTLSDir turns TLS on with the material in dir (ca.crt, node.crt/key,
// client.crt/key; cluster/certs.DevSet) instead of a new set.
func WithTLSDir(dir string) Option { return func(s *settings) { s.cfg.TLSDir = dir } }

// WithTLS turns TLS on: a development CA, one node certificate for
// 127.0.0.1 and localhost shared by all nodes, and a client certificate
// the harness presents (TLSDir has them all).
func WithTLS() Option { return func(s *settings) { s.tls = true } }

// WithTokens starts the nodes with an --auth-tokens file holding these
// entries and one of the harness's own (acquire, read, admin), which its
// calls send. It implies WithTLS.
func WithTokens(entries ...tokens.Token) Option {
	return func(s *settings) { s.tls, s.tokens = true, append(s.tokens, entries...) }
}

// WithSecurityFromEnv gives the TLS and token settings to the nodes as
// RAFTLOCK_* environment variables instead of flags (see Env).
func WithSecurityFromEnv() Option { return func(s *settings) { s.cfg.SecurityFromEnv = true } }

// KeepEnv names a directory where a failed test's cluster directory (data,
// logs, journals) is copied, under the test's name: KEEP_LOGS=/tmp/keep.
const KeepEnv = "KEEP_LOGS"

// New starts n founding nodes for test t, on ports picked free on
// 127.0.0.1, with data and logs under t.TempDir() and --debug on, and stops
// them when the test ends (showing the end of every node's log if it
// failed, and copying the whole directory to $KEEP_LOGS if set). It does
// not wait for a leader: Leader does.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	s := settings{cfg: Config{Nodes: n, Dir: t.TempDir(), Debug: true, Logf: t.Logf}}
	for _, o := range opts {
		o(&s)
	}
	if s.cfg.Binary == "" {
		s.cfg.Binary = Binary(t)
	}
	if s.tls && s.cfg.TLSDir == "" {
		s.cfg.TLSDir = filepath.Join(s.cfg.Dir, "certs")
		if err := certs.DevSet(s.cfg.TLSDir, []string{"127.0.0.1", "localhost"}, 24*time.Hour); err != nil {
			t.Fatalf("certificates: %v", err)
		}
	}
	if s.tokens != nil {
		secret, err := tokens.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		file := tokens.File{Tokens: append(slices.Clone(s.tokens), tokens.Token{Name: "testcluster", SHA256: tokens.Hash(secret),
			Verbs: []string{tokens.VerbAcquire, tokens.VerbRead, tokens.VerbAdmin}})}
		b, err := json.Marshal(file)
		if err != nil {
			t.Fatal(err)
		}
		s.cfg.TokenFile, s.cfg.Token = filepath.Join(s.cfg.Dir, "tokens.json"), secret
		if err := os.WriteFile(s.cfg.TokenFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Start(s.cfg)
	if err != nil {
		t.Fatalf("start the cluster: %v", err)
	}
	c.t = t
	t.Cleanup(func() {
		c.Close()
		if !t.Failed() {
			return
		}
		for i := range c.nodes {
			t.Logf("log of %s (%s):\n%s", c.ID(i), c.Addr(i), c.Log(i, logTail))
		}
		if keep := os.Getenv(KeepEnv); keep != "" {
			dst := filepath.Join(keep, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
			if err := os.CopyFS(dst, os.DirFS(s.cfg.Dir)); err != nil {
				t.Logf("keeping the cluster directory: %v", err)
			} else {
				t.Logf("cluster directory kept in %s", dst)
			}
		}
	})
	return c
}

// tb returns the test of a cluster made by New.
func (c *Cluster) tb() testing.TB {
	if c.t == nil {
		panic("testcluster: this helper needs a cluster made by New")
	}
	return c.t
}

// FindLeader returns the leader the running nodes agree on (see
// Endpoints.AgreedLeader).
func (c *Cluster) FindLeader(ctx context.Context) (int, error) {
	return c.AgreedLeader(ctx, c.RunningNodes())
}

// Leader waits until the running nodes agree on a leader that is ready,
// and returns its index.
func (c *Cluster) Leader() int {
	t := c.tb()
	t.Helper()
	l, last := -1, ""
	Poll(t, DefaultWait, pollEvery, "an agreed leader", func() bool {
		var err error
		if l, err = c.FindLeader(t.Context()); err != nil {
			last = err.Error()
		}
		return err == nil
	}, &last)
	return l
}

// Followers waits for a leader and returns the other running nodes.
func (c *Cluster) Followers() []int {
	t := c.tb()
	t.Helper()
	l := c.Leader()
	return slices.DeleteFunc(c.RunningNodes(), func(i int) bool { return i == l })
}

// WaitFor polls cond every 20 ms until it holds, failing the test after
// DefaultWait.
func (c *Cluster) WaitFor(what string, cond func() bool) {
	t := c.tb()
	t.Helper()
	WaitFor(t, DefaultWait, what, cond)
}

// WaitFor polls cond every 20 ms until it holds, failing t after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Poll(t, timeout, pollEvery, what, cond, nil)
}

// Poll calls cond every `every` until it holds, failing t with what after
// timeout, or when t's context ends. A cond that records what it saw in
// *last (if last is not nil) has it shown in the failure.
func Poll(t testing.TB, timeout, every time.Duration, what string, cond func() bool, last *string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			detail := ""
			if last != nil && *last != "" {
				detail = "; last seen: " + *last
			}
			t.Fatalf("timed out after %s waiting for %s%s", timeout, what, detail)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		case <-time.After(every):
		}
	}
}

// EnsureSame fails the test unless every replica (the running members)
// reaches one applied index with the same table hash within DefaultWait.
func (c *Cluster) EnsureSame() {
	t := c.tb()
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), DefaultWait)
	defer cancel()
	summary, err := c.SameState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(summary)
}
