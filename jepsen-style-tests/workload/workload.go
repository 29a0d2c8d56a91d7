// Package workload is the fault suite's clients: each loops acquire →
// (refresh) → write to a fenced resource → release on a few contended keys,
// with some linearizable reads, through the Go client, and records every
// operation with invoke and return times from one monotonic clock.
package workload

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/jepsen-style-tests/history"
)

// Config shapes the workload.
type Config struct {
	// Endpoints are the nodes' addresses (host:port or URLs).
	Endpoints []string
	// Clients is the number of concurrent clients (10-12).
	Clients int
	// ClientAddrs, if set, gives client i the local address
	// ClientAddrs[i%len] to connect from, so faults can cut clients off.
	ClientAddrs []string
	// Expire is the locks' time to live.
	Expire time.Duration
	// Wait is how long an acquire may queue.
	Wait time.Duration
	// Margin is the clients' safety margin (taken off the conservative
	// deadline).
	Margin time.Duration
	// Interval is the mean pause between a client's operations (the rate
	// limit that lets nodes and clients share two cores).
	Interval time.Duration
	// HoldMax bounds how long a client holds a lock before it writes.
	HoldMax time.Duration
	// ReadEvery makes one operation in ReadEvery a linearizable read.
	ReadEvery int
	// OpTimeout bounds each call beyond its wait.
	OpTimeout time.Duration
	// Seed seeds the clients' choices.
	Seed uint64
	// Hosts maps addresses the nodes advertise (leader hints) to addresses
	// the clients can dial (for containers reached through host ports).
	Hosts map[string]string
	// HTTPClient, if set, builds each client's HTTP client (TLS, tokens);
	// dial is the dialer bound to the client's address.
	HTTPClient func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client
	// Options are extra client options (e.g. a bearer token).
	Options []client.Option
	// Abandoners is the number of clients that abandon waiting acquires
	// at random (abandon.go); -1: none. Default 2.
	Abandoners int
}

// Defaults fills in unset fields.
func (c Config) withDefaults() Config {
	if c.Clients == 0 {
		c.Clients = 10
	}
	if c.Expire == 0 {
		c.Expire = 3 * time.Second
	}
	if c.Wait == 0 {
		c.Wait = time.Second
	}
	if c.Margin == 0 {
		c.Margin = c.Expire/10 + 50*time.Millisecond
	}
	if c.Interval == 0 {
		c.Interval = 60 * time.Millisecond
	}
	if c.HoldMax == 0 {
		c.HoldMax = c.Expire / 3
	}
	if c.ReadEvery == 0 {
		c.ReadEvery = 5
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 4 * time.Second
	}
	if c.Abandoners == 0 {
		c.Abandoners = 2
	}
	return c
}

// Fenced is the resource the locks protect: it accepts a write for a key
// only if its token is at least the highest it has accepted for that key.
// Writes under shared and semaphore holds follow the modes' rule instead
// (WriteHold).
type Fenced struct {
	mu      sync.Mutex
	highest map[string]uint64
	modes   modeFence
}

// NewFenced returns an empty resource.
func NewFenced() *Fenced { return &Fenced{highest: map[string]uint64{}, modes: newModeFence()} }

// Write accepts or rejects a write under a fencing token.
func (f *Fenced) Write(key string, token uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if token < f.highest[key] {
		return false
	}
	f.highest[key] = token
	return true
}

// Recorder collects operations with times since Start.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []history.Op
	next  int
}

// NewRecorder starts the run's clock.
func NewRecorder(start time.Time) *Recorder { return &Recorder{start: start} }

// Now is the run's clock: nanoseconds since start, monotonic.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Since converts a time to the run's clock.
func (r *Recorder) Since(t time.Time) int64 { return int64(t.Sub(r.start)) }

func (r *Recorder) add(op history.Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.ID = r.next
	r.next++
	r.ops = append(r.ops, op)
}

// Ops returns a copy of the operations so far.
func (r *Recorder) Ops() []history.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]history.Op(nil), r.ops...)
}

// Workload runs the clients.
type Workload struct {
	cfg    Config
	rec    *Recorder
	fenced *Fenced
	keys   atomic.Pointer[[]string]
	ab     abandoners
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// New prepares a workload recording into rec.
func New(cfg Config, rec *Recorder) *Workload {
	return &Workload{cfg: cfg.withDefaults(), rec: rec, fenced: NewFenced()}
}

// Fenced returns the resource the clients write to.
func (w *Workload) Fenced() *Fenced { return w.fenced }

// SetKeys changes the keys clients contend on (rotated each nemesis cycle).
func (w *Workload) SetKeys(keys []string) { w.keys.Store(&keys) }

// Start launches the clients; Stop ends them.
func (w *Workload) Start(ctx context.Context) error {
	ctx, w.cancel = context.WithCancel(ctx)
	for i := range w.cfg.Clients {
		cl, err := w.newClient(i)
		if err != nil {
			w.cancel()
			w.wg.Wait()
			return err
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer cl.Close()
			w.loop(ctx, i, cl)
		}()
	}
	for i := range max(w.cfg.Abandoners, 0) {
		local := ""
		if n := len(w.cfg.ClientAddrs); n > 0 {
			local = w.cfg.ClientAddrs[(w.cfg.Clients+i)%n]
		}
		dial := Dialer(local, w.cfg.Hosts)
		hc := HTTPClient(dial)
		if w.cfg.HTTPClient != nil {
			hc = w.cfg.HTTPClient(dial)
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer hc.CloseIdleConnections()
			w.abandonLoop(ctx, i, local, hc)
		}()
	}
	return nil
}

// Stop cancels the clients and waits for them.
func (w *Workload) Stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
}

// Dialer returns a dialer that connects from local (if not empty) and
// rewrites addresses found in hosts.
func Dialer(local string, hosts map[string]string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if to, ok := hosts[addr]; ok {
			addr = to
		}
		return d.DialContext(ctx, network, addr)
	}
}

// TLSHTTPClient returns an HTTP/2-over-TLS client that dials with dial.
func TLSHTTPClient(tc *tls.Config) func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	return func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
		p := new(http.Protocols)
		p.SetHTTP2(true)
		return &http.Client{Transport: &http.Transport{Protocols: p, DialContext: dial, TLSClientConfig: tc,
			HTTP2: &http.HTTP2Config{PingTimeout: time.Second, SendPingTimeout: time.Second}}}
	}
}

// HTTPClient returns an h2c client that dials with dial.
func HTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p, DialContext: dial,
		HTTP2: &http.HTTP2Config{PingTimeout: time.Second, SendPingTimeout: time.Second}}}
}

func (w *Workload) newClient(i int) (*client.Client, error) {
	local := ""
	if n := len(w.cfg.ClientAddrs); n > 0 {
		local = w.cfg.ClientAddrs[i%n]
	}
	dial := Dialer(local, w.cfg.Hosts)
	hc := HTTPClient(dial)
	if w.cfg.HTTPClient != nil {
		hc = w.cfg.HTTPClient(dial)
	}
	opts := []client.Option{
		client.WithHTTPClient(hc), client.WithSafetyMargin(w.cfg.Margin), client.WithoutAbandonCleanup(),
		client.WithAttemptTimeout(2 * time.Second), client.WithBackoff(20*time.Millisecond, 300*time.Millisecond),
		client.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	}
	return client.New(w.cfg.Endpoints, append(opts, w.cfg.Options...)...)
}

func (w *Workload) loop(ctx context.Context, id int, cl *client.Client) {
	rng := rand.New(rand.NewPCG(w.cfg.Seed, uint64(id)))
	for seq := 0; ; seq++ {
		pause := time.Duration(rng.Int64N(int64(2*w.cfg.Interval) + 1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		keys := *w.keys.Load()
		key := keys[rng.IntN(len(keys))]
		if seq%w.cfg.ReadEvery == 0 && !HasModes(key) { // the read model is the exclusive lock's
			w.read(ctx, id, cl, key)
		} else {
			w.cycle(ctx, id, seq, rng, cl, key)
		}
	}
}

// classify turns a client error into an outcome: definite failures are
// the answers the server gave; anything else (timeouts, no leader, cut
// connections) leaves the outcome unknown.
func classify(err error, definite ...error) history.Outcome {
	if err == nil {
		return history.OutcomeOK
	}
	for _, d := range definite {
		if errors.Is(err, d) {
			return history.OutcomeFail
		}
	}
	return history.OutcomeUnknown
}

func (w *Workload) read(ctx context.Context, id int, cl *client.Client, key string) {
	op := history.Op{Client: id, Kind: history.KindRead, Key: key, Invoke: w.rec.Now()}
	rctx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
	info, err := cl.Get(rctx, key)
	cancel()
	op.Return = w.rec.Now()
	op.Outcome = classify(err)
	if err != nil {
		op.Error = err.Error()
	} else if info != nil {
		op.Held, op.ReadOwner, op.Token = true, info.Owner, info.Token
	}
	w.rec.add(op)
}

func (w *Workload) cycle(ctx context.Context, id, seq int, rng *rand.Rand, cl *client.Client, key string) {
	owner := fmt.Sprintf("c%02d-%06d", id, seq)
	acq := history.Op{Client: id, Kind: history.KindAcquire, Key: key, Owner: owner, RequestID: owner + "/acquire",
		Expire: w.cfg.Expire, Invoke: w.rec.Now()}
	opts := []client.LockOption{client.WithOwner(owner), client.WithExpire(w.cfg.Expire),
		client.WithWait(w.cfg.Wait), client.WithRequestID(acq.RequestID)}
	opts = append(opts, modeOptions(&acq, rng)...)
	actx, cancel := context.WithTimeout(ctx, w.cfg.Wait+w.cfg.OpTimeout)
	lk, err := cl.Acquire(actx, []string{key}, opts...)
	cancel()
	acq.Return = w.rec.Now()
	// ErrWrongMode: refused at once (in the first seconds of a run, before
	// the cluster version is raised, shared and semaphore requests are).
	acq.Outcome = classify(err, client.ErrLockHeld, client.ErrWaitTimeout, client.ErrWrongMode)
	if err != nil {
		acq.Error = err.Error()
		w.rec.add(acq)
		return
	}
	// The grant's own request id: the client re-issues a withdrawn wait as
	// id#1, id#2, ... and the replicas recorded the grant under that one.
	acq.Token, acq.Deadline, acq.RequestID = lk.Token(), w.rec.Since(lk.Deadline()), lk.RequestID()
	acq.Slots = lk.Slots()[key]
	w.rec.add(acq)

	if rng.IntN(3) == 0 {
		ref := history.Op{Client: id, Kind: history.KindRefresh, Key: key, Owner: owner, RequestID: owner + "/refresh",
			Expire: w.cfg.Expire, Invoke: w.rec.Now(), Mode: acq.Mode, Limit: acq.Limit}
		rctx, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
		err := lk.Refresh(rctx, client.WithCallRequestID(ref.RequestID))
		cancel()
		ref.Return = w.rec.Now()
		ref.Outcome = classify(err, client.ErrNotHeld, client.ErrLockLost)
		if err != nil {
			ref.Error = err.Error()
		} else {
			ref.Deadline = w.rec.Since(lk.Deadline())
		}
		w.rec.add(ref)
	}

	// Hold a while, then write under the token, but only while the lock is
	// still guaranteed by the client's own conservative deadline.
	select {
	case <-time.After(time.Duration(rng.Int64N(int64(w.cfg.HoldMax) + 1))):
	case <-lk.Done():
	case <-ctx.Done():
	}
	if lk.Err() == nil && time.Now().Before(lk.Deadline()) {
		wr := history.Op{Client: id, Kind: history.KindWrite, Key: key, Owner: owner, Token: lk.Token(), Invoke: w.rec.Now(),
			Mode: acq.Mode, Limit: acq.Limit, Slots: acq.Slots}
		var ok bool
		if acq.Mode == "" {
			ok = w.fenced.Write(key, lk.Token())
		} else {
			ok = w.fenced.WriteHold(key, acq.Mode, lk.Token(), acq.Slots)
		}
		wr.Return = w.rec.Now()
		wr.Outcome = history.OutcomeFail
		if ok {
			wr.Outcome = history.OutcomeOK
		}
		w.rec.add(wr)
	}

	rel := history.Op{Client: id, Kind: history.KindRelease, Key: key, Owner: owner, RequestID: owner + "/release",
		Token: lk.Token(), Invoke: w.rec.Now(), Mode: acq.Mode, Limit: acq.Limit}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.OpTimeout)
	err = lk.Release(rctx, client.WithCallRequestID(rel.RequestID))
	cancel()
	rel.Return = w.rec.Now()
	switch {
	case err == nil:
		rel.Outcome, rel.Released = history.OutcomeOK, true
	case errors.Is(err, client.ErrNotHeld):
		// Answered: the token is no longer current; nothing was freed.
		rel.Outcome, rel.Error = history.OutcomeFail, err.Error()
	default:
		rel.Outcome, rel.Error = history.OutcomeUnknown, err.Error()
	}
	w.rec.add(rel)
}
