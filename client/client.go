package client

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
)

// Response headers by which every node names the leader it knows.
const (
	leaderHeader   = "Raftlock-Leader"
	leaderIDHeader = "Raftlock-Leader-Id"
)

// Client talks to a raftlock cluster. It is safe for concurrent use; make
// one per process and share it.
type Client struct {
	cfg     config
	log     *slog.Logger
	scheme  string
	connOpt []connect.ClientOption
	route   *router

	mu     sync.Mutex
	stubs  map[string]*stub
	locks  map[*Lock]struct{} // live locks, for cleanup and Close
	closed bool
	wg     sync.WaitGroup // background cleanups and lock keepers
	done   chan struct{}  // closed by Close
}

// stub holds the generated clients for one node.
type stub struct {
	lock    raftlockv1connect.LockServiceClient
	cluster raftlockv1connect.ClusterServiceClient
}

// New returns a Client for the cluster reachable at endpoints, each a
// "host:port" (or "http://host:port") of any node; one is enough, more
// let the client go on when some are down. New does not contact the
// cluster: the first call finds the leader.
func New(endpoints []string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, errNoEndpoints)
	}
	scheme := ""
	addrs := make([]string, 0, len(endpoints))
	for _, e := range endpoints {
		s, addr, err := parseEndpoint(e)
		if err != nil {
			return nil, err
		}
		if cfg.tls != nil && !strings.Contains(e, "://") {
			s = "https"
		}
		if scheme != "" && s != scheme {
			return nil, fmt.Errorf("%w: endpoints mix http and https", ErrInvalidArgument)
		}
		scheme = s
		addrs = append(addrs, addr)
	}
	if cfg.token != "" && scheme != "https" {
		return nil, fmt.Errorf("%w: a bearer token is sent only over TLS (WithTLS or https:// endpoints)", ErrInvalidArgument)
	}
	if cfg.httpClient == nil {
		cfg.httpClient = defaultHTTPClient(cfg.protocol, scheme, cfg.tls)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	c := &Client{
		cfg: cfg, log: cfg.logger.With("component", "raftlock-client"), scheme: scheme,
		route: newRouter(addrs), stubs: map[string]*stub{}, locks: map[*Lock]struct{}{},
		done: make(chan struct{}),
	}
	switch cfg.protocol {
	case ProtocolGRPC:
		c.connOpt = []connect.ClientOption{connect.WithGRPC()}
	case ProtocolConnectJSON:
		c.connOpt = []connect.ClientOption{connect.WithProtoJSON()}
	case ProtocolConnectProto:
	}
	if cfg.token != "" {
		c.connOpt = append(c.connOpt, connect.WithInterceptors(bearer(cfg.token)))
	}
	return c, nil
}

func parseEndpoint(e string) (scheme, addr string, err error) {
	scheme, addr = "http", strings.TrimSpace(e)
	if rest, ok := strings.CutPrefix(addr, "http://"); ok {
		addr = rest
	} else if rest, ok := strings.CutPrefix(addr, "https://"); ok {
		scheme, addr = "https", rest
	}
	addr = strings.TrimSuffix(addr, "/")
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("%w: endpoint %q: %v", ErrInvalidArgument, e, err)
	}
	return scheme, addr, nil
}

// Close stops the keepers of the client's locks (their Done channels
// close: without refreshes they can no longer be guaranteed; nothing is
// released), waits for background cleanups (each bounded by the cleanup
// timeout) and closes idle connections. Calls after Close fail with
// ErrClosed. Close is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	live := make([]*Lock, 0, len(c.locks))
	for l := range c.locks {
		live = append(live, l)
	}
	c.mu.Unlock()
	for _, l := range live {
		l.fail(fmt.Errorf("%w: %w", ErrLockLost, ErrClosed))
	}
	c.wg.Wait()
	c.cfg.httpClient.CloseIdleConnections()
	return nil
}

// Leader returns the address of the leader the client last learned of, or
// "" when it knows none.
func (c *Client) Leader() string { return c.route.leaderAddr() }

func (c *Client) stubFor(addr string) *stub {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stubs[addr]
	if s == nil {
		base := c.scheme + "://" + addr
		s = &stub{
			lock:    raftlockv1connect.NewLockServiceClient(c.cfg.httpClient, base, c.connOpt...),
			cluster: raftlockv1connect.NewClusterServiceClient(c.cfg.httpClient, base, c.connOpt...),
		}
		c.stubs[addr] = s
	}
	return s
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// attempt is one request to one node: it returns the response headers
// (to learn the leader from) and the error.
type attempt func(ctx context.Context, s *stub) (http.Header, error)

// call runs one logical call. Each attempt goes to the leader if one is
// known, else to the next endpoint in turn; an attempt that fails without
// a definite answer (unreachable, unavailable, timed out) is retried after
// a backoff with jitter, until ctx ends. The attempt function must reuse
// its request id on every attempt: that makes the retries exactly-once.
// extra lengthens each attempt's timeout (an Acquire's wait).
// attemptHeader carries which try of a request id an Acquire is (1 for
// the first): a node that took an earlier try and later sees its caller
// gone then cannot take back what a later try was granted. maxTries is the
// highest count sent; later tries say maxTries.
const (
	attemptHeader = "Raftlock-Attempt"
	maxTries      = 255
)

func (c *Client) call(ctx context.Context, op string, extra time.Duration, do attempt) error {
	var last error // the last retryable failure
	backoff := c.cfg.minBackoff
	followed := false // the previous attempt followed a fresh leader hint
	bg := ctx.Value(backgroundKey{}) != nil
	for n := 0; ; n++ {
		if !bg && c.isClosed() {
			return ErrClosed
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, endError(ctx, last))
		}
		addr := c.route.pick()
		wasDown := c.route.isDown(addr)
		actx, cancel := context.WithTimeout(ctx, c.cfg.attemptTimeout+extra)
		hdr, err := do(actx, c.stubFor(addr))
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		var ce *connect.Error
		if err != nil && errors.As(err, &ce) {
			hdr = ce.Meta()
		}
		hint := ""
		if hdr != nil {
			hint = hdr.Get(leaderHeader)
		}
		if err == nil {
			c.route.succeeded(addr, hint)
			return nil
		}
		if ctx.Err() != nil {
			// The caller's context ended during the attempt: whatever
			// error the attempt saw is a consequence of that. An attempt
			// that does not wait in a queue and got no answer in all that
			// time counts as a failure of its endpoint; if the endpoint
			// had failed before, no leader was reached.
			if extra == 0 {
				c.route.failed(addr, hint)
			}
			if last == nil && wasDown {
				last = fmt.Errorf("%s did not answer before the context ended, and had failed before", addr)
			}
			return fmt.Errorf("%s: %w", op, endError(ctx, last))
		}
		aerr := attemptError(err, timedOut)
		if !errors.Is(aerr, errRetry) {
			c.route.succeeded(addr, hint) // the node answered
			return aerr                   // the server's own words, not prefixed
		}
		last = aerr
		redirected := c.route.failed(addr, hint)
		c.log.Debug("attempt failed; retrying", "op", op, "endpoint", addr, "leader_hint", hint, "attempt", n+1, "err", err)
		if redirected && !followed {
			followed = true
			continue // a fresh leader hint: go there at once
		}
		followed = false
		done := c.done
		if bg {
			done = nil // background cleanups outlive Close, within their own timeout
		}
		if err := sleep(ctx, done, jitter(backoff)); err != nil {
			return fmt.Errorf("%s: %w", op, endError(ctx, last))
		}
		backoff = min(2*backoff, c.cfg.maxBackoff)
	}
}

// backgroundKey marks the context of a background cleanup, which goes on
// after Close.
type backgroundKey struct{}

// sleep waits d or until ctx ends or done closes.
func sleep(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return ErrClosed
	}
}

// jitter draws a pause between d/2 and d.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// newID returns a random request id (crypto/rand, 128 bits).
func newID() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// router decides where the next attempt goes: the leader when one is
// known, else the endpoints in turn. Addresses learned from leader hints
// join the rotation, so the client follows the cluster even where the
// leader is not among the endpoints it was given.
type router struct {
	mu     sync.Mutex
	addrs  []string
	known  map[string]bool
	down   map[string]bool // failed at the last attempt
	leader string
	next   int
}

func newRouter(addrs []string) *router {
	r := &router{known: map[string]bool{}, down: map[string]bool{}}
	for _, a := range addrs {
		r.add(a)
	}
	return r
}

func (r *router) add(a string) {
	if !r.known[a] {
		r.known[a] = true
		r.addrs = append(r.addrs, a)
	}
}

func (r *router) pick() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader != "" {
		return r.leader
	}
	return r.addrs[r.next%len(r.addrs)]
}

func (r *router) leaderAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

// isDown reports whether the last attempt at addr failed.
func (r *router) isDown(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down[addr]
}

// succeeded records an answer from addr, which named hint as the leader.
func (r *router) succeeded(addr, hint string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.down, addr)
	if hint != "" {
		r.add(hint)
		r.leader = hint
	}
}

// learn records a leader named by a Status answer, and the cluster's
// member addresses.
func (r *router) learn(leader string, members []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range members {
		if m != "" {
			r.add(m)
		}
	}
	if leader != "" {
		r.add(leader)
		r.leader = leader
	}
}

// failed records a failed attempt at addr. If the answer named another
// node as leader, the next attempt goes there (and failed reports true);
// otherwise the client forgets addr as leader and moves on to the next
// endpoint.
func (r *router) failed(addr, hint string) (redirected bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down[addr] = true
	if hint != "" && hint != addr {
		r.add(hint)
		redirected = r.leader != hint
		r.leader = hint
		return redirected
	}
	if r.leader == addr || r.leader == "" {
		r.leader = ""
		for i, a := range r.addrs {
			if a == addr {
				r.next = i + 1
				break
			}
		}
	}
	return false
}

// bearer adds the Authorization header to every call, unary and
// streaming (the backup calls stream).
func bearer(token string) connect.Interceptor { return bearerInterceptor("Bearer " + token) }

type bearerInterceptor string

func (b bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", string(b))
		return next(ctx, req)
	}
}

func (b bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", string(b))
		return conn
	}
}

func (b bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
