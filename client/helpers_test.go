package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// testCtx bounds a whole test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// logWriter sends client logs to t.Log until the test ends.
type logWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &logWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newClient returns a client for addrs that logs to t and is closed when
// the test ends.
func newClient(t testing.TB, addrs []string, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithLogger(testLogger(t)), client.WithBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)
	c, err := client.New(addrs, opts...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func h2cTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: p, DialContext: dial}
}

// cutter is a test-only dialer whose connections the test can cut: Cut
// breaks every open connection and refuses new ones, as a partition
// between the client and the whole cluster would.
type cutter struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newCutter() *cutter { return &cutter{conns: map[net.Conn]struct{}{}} }

func (k *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	k.mu.Lock()
	cut := k.cut
	k.mu.Unlock()
	if cut {
		return nil, errors.New("test: the client is cut off")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cut {
		c.Close()
		return nil, errors.New("test: the client is cut off")
	}
	k.conns[c] = struct{}{}
	return c, nil
}

func (k *cutter) Cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cut = true
	for c := range k.conns {
		c.Close()
	}
	clear(k.conns)
}

func (k *cutter) httpClient() *http.Client { return &http.Client{Transport: h2cTransport(k.dial)} }

// recorder is a RoundTripper that remembers which host each request went
// to, and can run a hook around Acquire requests.
type recorder struct {
	base http.RoundTripper

	mu    sync.Mutex
	hosts []string
	// onAcquire, when set, replaces the round trip of Acquire requests.
	onAcquire func(req *http.Request, base http.RoundTripper) (*http.Response, error)
}

func newRecorder() *recorder {
	return &recorder{base: h2cTransport((&net.Dialer{}).DialContext)}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Host)
	hook := r.onAcquire
	r.mu.Unlock()
	if hook != nil && strings.HasSuffix(req.URL.Path, "/Acquire") {
		return hook(req, r.base)
	}
	return r.base.RoundTrip(req)
}

func (r *recorder) setHook(h func(req *http.Request, base http.RoundTripper) (*http.Response, error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onAcquire = h
}

// since returns the hosts of the requests after the first n.
func (r *recorder) since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.hosts[n:]...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hosts)
}

// readAll drains and closes a response body.
func readAll(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	clustertest.WaitFor(t, timeout, what, cond)
}

// mustFree fails the test unless key is free.
func mustFree(t *testing.T, ctx context.Context, c *client.Client, key string) {
	t.Helper()
	li, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if li != nil {
		t.Fatalf("key %q is still held: %+v", key, *li)
	}
}
