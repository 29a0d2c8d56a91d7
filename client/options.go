package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Protocol is the wire protocol a Client speaks. Every raftlock node
// serves all of them on its one port.
type Protocol int

const (
	// ProtocolGRPC is gRPC over HTTP/2 without TLS (h2c). The default.
	ProtocolGRPC Protocol = iota
	// ProtocolConnectJSON is the Connect protocol with JSON bodies over
	// HTTP/1.1: what curl and browsers speak, and what plain HTTP proxies
	// pass.
	ProtocolConnectJSON
	// ProtocolConnectProto is the Connect protocol with binary protobuf
	// bodies over h2c.
	ProtocolConnectProto
)

// String returns the protocol's name.
func (p Protocol) String() string {
	switch p {
	case ProtocolGRPC:
		return "grpc"
	case ProtocolConnectJSON:
		return "connect+json"
	case ProtocolConnectProto:
		return "connect+proto"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// Defaults of a Client; each Option overrides one of them.
const (
	// DefaultAttemptTimeout bounds one attempt of a call (one request to
	// one node). An Acquire's attempt may also last its wait timeout.
	DefaultAttemptTimeout = 5 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the pause between
	// attempts: it doubles from the minimum up to the maximum, each pause
	// drawn at random between half and all of its current value.
	DefaultMinBackoff = 50 * time.Millisecond
	DefaultMaxBackoff = time.Second
	// DefaultSafetyMargin is taken off a lock's time to live when the
	// client computes its conservative deadline (see Lock.Deadline).
	DefaultSafetyMargin = time.Second
	// DefaultCleanupTimeout bounds the background work that undoes an
	// Acquire abandoned with an unknown outcome, and the release at the end
	// of Execute.
	DefaultCleanupTimeout = 10 * time.Second
)

// Option changes one setting of a Client. Options are applied in order
// over the defaults.
type Option func(*config)

type config struct {
	httpClient     *http.Client
	protocol       Protocol
	attemptTimeout time.Duration
	minBackoff     time.Duration
	maxBackoff     time.Duration
	safetyMargin   time.Duration
	cleanupTimeout time.Duration
	abandonCleanup bool
	logger         *slog.Logger
	tls            *tls.Config
	token          string
}

func defaultConfig() config {
	return config{
		protocol:       ProtocolGRPC,
		attemptTimeout: DefaultAttemptTimeout,
		minBackoff:     DefaultMinBackoff,
		maxBackoff:     DefaultMaxBackoff,
		safetyMargin:   DefaultSafetyMargin,
		cleanupTimeout: DefaultCleanupTimeout,
		abandonCleanup: true,
	}
}

func (c config) validate() error {
	switch {
	case c.protocol < ProtocolGRPC || c.protocol > ProtocolConnectProto:
		return fmt.Errorf("%w: unknown protocol %d", ErrInvalidArgument, int(c.protocol))
	case c.attemptTimeout <= 0:
		return fmt.Errorf("%w: attempt timeout must be positive, got %s", ErrInvalidArgument, c.attemptTimeout)
	case c.minBackoff <= 0 || c.maxBackoff < c.minBackoff:
		return fmt.Errorf("%w: backoff needs 0 < min <= max, got %s and %s", ErrInvalidArgument, c.minBackoff, c.maxBackoff)
	case c.safetyMargin < 0:
		return fmt.Errorf("%w: safety margin must not be negative, got %s", ErrInvalidArgument, c.safetyMargin)
	case c.cleanupTimeout <= 0:
		return fmt.Errorf("%w: cleanup timeout must be positive, got %s", ErrInvalidArgument, c.cleanupTimeout)
	}
	return nil
}

// WithHTTPClient makes the Client send every request through hc. The
// client must speak the protocol chosen: HTTP/2 without TLS (h2c) for
// gRPC and Connect binary, HTTP/1.1 or h2c for Connect JSON. Default: a
// client of the Client's own that reuses connections (one h2c
// connection per node; for Connect JSON a pool of HTTP/1.1 connections),
// with a 3 s dial timeout and HTTP/2 health pings.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithProtocol chooses the wire protocol. Default: ProtocolGRPC.
func WithProtocol(p Protocol) Option { return func(c *config) { c.protocol = p } }

// WithAttemptTimeout bounds each attempt (one request to one node); a
// timed-out attempt is retried, on another node if there is one, with the
// same request id. An Acquire's attempt may take its wait timeout plus d.
// Default: DefaultAttemptTimeout (5 s).
func WithAttemptTimeout(d time.Duration) Option { return func(c *config) { c.attemptTimeout = d } }

// WithBackoff sets the pause between attempts: it starts at min and
// doubles up to max, each pause drawn at random between half and all of
// its value (jitter), so clients that failed together do not retry
// together. Defaults: DefaultMinBackoff (50 ms) and DefaultMaxBackoff (1 s).
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) { c.minBackoff, c.maxBackoff = min, max }
}

// WithLogger sets where the client logs retries (debug), lost locks and
// failed cleanups (warn). Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithSafetyMargin sets the margin the client keeps between its own idea
// of when a lock ends and the server's (see Lock.Deadline): it covers the
// time the caller needs to notice Done and stop using the resource, and
// scheduling delays. Default: DefaultSafetyMargin (1 s). A drift allowance
// of 0.1% of the time to live is always added, and the total is capped at
// a third of the time to live.
func WithSafetyMargin(d time.Duration) Option { return func(c *config) { c.safetyMargin = d } }

// WithCleanupTimeout bounds the background cleanup of an Acquire whose
// outcome was unknown when its context ended, and the release Execute
// does after fn returns. Default: DefaultCleanupTimeout (10 s).
func WithCleanupTimeout(d time.Duration) Option { return func(c *config) { c.cleanupTimeout = d } }

// WithTLS makes the Client speak TLS with the given configuration (the CA
// that signed the nodes' certificates in RootCAs, and a client certificate
// if the nodes ask for one). Endpoints without a scheme are then reached
// over https. Ignored when WithHTTPClient supplies the HTTP client.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithBearerToken sends "Authorization: Bearer token" with every call, for
// nodes started with --auth-tokens (which also need TLS).
func WithBearerToken(token string) Option { return func(c *config) { c.token = token } }

// WithoutAbandonCleanup turns off the background work that undoes an
// Acquire whose outcome was unknown when its caller gave up (see Acquire):
// such a grant then lasts until it expires. The fault suite uses it so that
// every release in its history is one it made and recorded.
func WithoutAbandonCleanup() Option { return func(c *config) { c.abandonCleanup = false } }

// defaultHTTPClient returns the HTTP client a Client uses unless given
// one: h2c only for gRPC and Connect binary (so gRPC never falls back to
// HTTP/1.1), HTTP/1.1 for Connect JSON; over https, HTTP/2 with TLS (and
// HTTP/1.1 for Connect JSON).
func defaultHTTPClient(p Protocol, scheme string, tlsCfg *tls.Config) *http.Client {
	protocols := new(http.Protocols)
	switch {
	case scheme == "https":
		protocols.SetHTTP1(p == ProtocolConnectJSON)
		protocols.SetHTTP2(true)
	case p == ProtocolConnectJSON:
		protocols.SetHTTP1(true)
	default:
		protocols.SetUnencryptedHTTP2(true)
	}
	d := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Protocols:           protocols,
		TLSClientConfig:     tlsCfg,
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: 10 * time.Second, PingTimeout: 5 * time.Second},
	}}
}

// LockOption changes one setting of an Acquire or an Execute.
type LockOption func(*lockOptions)

type lockOptions struct {
	owner       string
	ownerSet    bool
	expire      time.Duration
	wait        time.Duration
	requestID   string
	autoRefresh bool
	mode        Mode // modes.go
	limit       int  // semaphore: permits in all
	permits     int  // semaphore: permits taken
}

// Defaults of Acquire and Execute.
const (
	// DefaultExpire is the time to live of a lock taken by Acquire or
	// Execute unless WithExpire says otherwise.
	DefaultExpire = 60 * time.Second
	// DefaultExecuteWait is how long Execute waits for its keys unless
	// WithWait says otherwise. Acquire does not wait by default.
	DefaultExecuteWait = 5 * time.Second
)

// WithOwner sets the owner of the lock. Acquire's default is the empty,
// anonymous owner (never re-entrant); Execute's default is an owner unique
// to the call. A non-empty owner may acquire keys it already holds again
// (re-entrant: the deadline is reset, the fencing token kept).
func WithOwner(owner string) LockOption {
	return func(o *lockOptions) { o.owner, o.ownerSet = owner, true }
}

// WithExpire sets the lock's time to live without a refresh, in cluster
// time from the grant. Zero: the lock never expires (see Lock.Done).
// Default: DefaultExpire (60 s).
func WithExpire(d time.Duration) LockOption { return func(o *lockOptions) { o.expire = d } }

// WithWait sets how long to wait in the queue when a key is busy. Zero
// makes Acquire a try-lock that fails at once with ErrLockHeld. Default:
// 0 for Acquire, DefaultExecuteWait (5 s) for Execute.
func WithWait(d time.Duration) LockOption { return func(o *lockOptions) { o.wait = d } }

// WithRequestID sets the request id of the Acquire (1 to 128 bytes)
// instead of a random one, so that a caller that retries across process
// restarts acquires exactly once. If the server withdrew the waiting
// Acquire of that id, the client continues with a fresh id.
func WithRequestID(id string) LockOption { return func(o *lockOptions) { o.requestID = id } }

// WithAutoRefresh makes Acquire's lock refresh itself every third of its
// time to live until it is released or lost. Execute always does this.
func WithAutoRefresh() LockOption { return func(o *lockOptions) { o.autoRefresh = true } }

func (o lockOptions) validate() error {
	switch {
	case o.expire < 0:
		return fmt.Errorf("%w: expire must not be negative, got %s", ErrInvalidArgument, o.expire)
	case o.wait < 0:
		return fmt.Errorf("%w: wait timeout must not be negative, got %s", ErrInvalidArgument, o.wait)
	case len(o.requestID) > 128:
		return fmt.Errorf("%w: request id is longer than 128 bytes", ErrInvalidArgument)
	}
	return o.validateMode()
}

var errNoEndpoints = errors.New("no endpoints")

// CallOption changes one call of Release, ReleaseWithToken, ReleaseAll,
// ForceRelease, Lock.Refresh or Lock.Release.
type CallOption func(*callOptions)

type callOptions struct{ requestID string }

// WithCallRequestID gives a mutating call the request id to use (by
// default a random one), so that its outcome can be looked up later
// (ClusterService/GetRequestOutcome) or matched against a server's record,
// as the fault suite does. A Lock.Release that frees keys of several
// fencing tokens uses id, id+"/2", id+"/3", ...
func WithCallRequestID(id string) CallOption { return func(o *callOptions) { o.requestID = id } }

// requestID returns the id the options name, or a new one.
func callRequestID(opts []CallOption) string {
	var o callOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.requestID != "" {
		return o.requestID
	}
	return newID()
}
