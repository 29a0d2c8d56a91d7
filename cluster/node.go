package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/raftlock/raftlock/fsm"
	"github.com/raftlock/raftlock/fsm/raftfsm"
)

// Node is one raftlock server: a Raft member with its lock table, serving
// the API on its one port.
type Node struct {
	cfg   Config
	log   *slog.Logger
	clock Clock

	fsm   *raftfsm.FSM
	raft  *raft.Raft
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
	port  *port
	tls   *tlsState   // nil without TLS
	auth  *authorizer // nil without --auth-tokens
	srv   *http.Server
	peers *peers
	hub   *hub
	met   *metrics

	mu       sync.Mutex
	office   *office       // set while this node leads and has taken office
	officeCh chan struct{} // closed and replaced when office changes

	shutdownCh   chan struct{}
	shutdownOnce sync.Once
	stopped      chan struct{}
	wg           sync.WaitGroup
}

// office is what a leader knows once it has taken office: the cluster time
// it started from and when, by its own monotonic clock.
type office struct {
	term      uint64
	base      int64
	start     time.Time
	wallStart time.Time // only for the deliberate wall-clock bug
	wallBug   bool
}

// stamp is the cluster time now: the base plus the time elapsed on this
// node's monotonic clock since it took office.
func (o *office) stamp(c Clock) int64 {
	if o.wallBug { // deliberately wrong: elapsed time by the wall clock
		return o.base + int64(c.Wall().Sub(o.wallStart))
	}
	return o.base + int64(c.Now().Sub(o.start))
}

// Start opens the node's storage, binds its port, starts Raft and serves.
// It returns once the node is serving; it does not wait for a leader.
func Start(cfg Config) (n *Node, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n = &Node{
		cfg: cfg, log: cfg.Logger.With("node", cfg.ID), clock: cfg.Clock,
		hub: newHub(), officeCh: make(chan struct{}), shutdownCh: make(chan struct{}), stopped: make(chan struct{}),
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	if cfg.TLS != nil {
		if n.tls, err = newTLSState(*cfg.TLS); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	if cfg.AuthTokens != "" {
		if n.auth, err = newAuthorizer(cfg.AuthTokens); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	n.port = newPort(ln, n.tls)
	cleanup = append(cleanup, func() { _ = ln.Close() })

	if n.store, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db"), BoltOptions: boltOptions()}); err != nil {
		return nil, fmt.Errorf("open raft store: %w", err)
	}
	cleanup = append(cleanup, func() { _ = n.store.Close() })
	hlog := hclogFor(n.log)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 3, hlog)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	logs, err := raft.NewLogCache(1024, n.store)
	if err != nil {
		return nil, err
	}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{ln: n.port.raft, advertise: advertiseAddr(cfg.Advertise), dial: cfg.Dialer, tls: n.tls},
		MaxPool: 4, Timeout: 10 * time.Second, Logger: hlog,
	})
	cleanup = append(cleanup, func() { _ = n.trans.Close() })

	n.met = newMetrics(n)
	hooks := raftfsm.Hooks{Applied: n.observe, SnapshotReleased: releaseSnapshotMemory}
	if cfg.Journal != nil {
		hooks.Restored = n.journalRestore
	}
	n.fsm = raftfsm.New(fsm.DefaultConfig(), hooks)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.BatchApplyCh = true
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.Logger = hlog

	existing, err := raft.HasExistingState(logs, n.store, snaps)
	if err != nil {
		return nil, fmt.Errorf("inspect raft state: %w", err)
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.store, snaps, n.trans); err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	cleanup = append(cleanup, func() { _ = n.raft.Shutdown().Error() })
	if !existing && cfg.Join == "" {
		servers := []raft.Server{{ID: raft.ServerID(cfg.ID), Address: raft.ServerAddress(cfg.Advertise)}}
		if len(cfg.InitialCluster) > 0 {
			servers = servers[:0]
			for _, p := range cfg.InitialCluster {
				servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
			}
		}
		if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}

	n.peers = newPeers(cfg.Dialer, n.tls)
	n.srv = n.newHTTPServer()
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.port.serve() }()
	go func() {
		defer n.wg.Done()
		if err := n.srv.Serve(n.port.http); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	}()
	go func() { defer n.wg.Done(); n.leaderLoop() }()
	if !existing && cfg.Join != "" {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.joinLoop() }()
	}
	if cfg.UnsafeBug != "" {
		n.log.Warn("THIS NODE IS DELIBERATELY BROKEN (--unsafe-bug); for testing the fault suite only", "bug", cfg.UnsafeBug)
	}
	n.log.Info("node started", "listen", ln.Addr().String(), "advertise", cfg.Advertise, "data_dir", cfg.DataDir,
		"existing_state", existing, "join", cfg.Join, "initial_cluster", len(cfg.InitialCluster))
	return n, nil
}

// boltOptions are the options of the Raft log's bolt database. Every
// commit is still fsynced; what changes is the free-page list, which bolt
// would otherwise rewrite (kilobytes per commit once log truncation has
// freed pages) and search linearly on every commit. Unsynced, it is
// rebuilt by a scan of the file when the node opens it; the map form finds
// free pages without a linear search.
func boltOptions() *bbolt.Options {
	return &bbolt.Options{
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	}
}

// freeAfterSnapshot is the size of snapshot after which the node hands
// memory back to the system at once.
const freeAfterSnapshot = 16 << 20

// releaseSnapshotMemory returns the memory of a large snapshot to the
// system, in the background. A snapshot is a copy of the whole table (50
// MiB for a million locks), taken or restored while the table is live; the
// garbage collector sets its next goal while that copy is live too, so
// without this the process keeps the copy's worth of memory, and more,
// until its next collection, which an idle node may not run for minutes.
// The forced collection costs some CPU once per snapshot and saves 100-200
// MiB of RSS per node at a million locks.
func releaseSnapshotMemory(size int) {
	if size >= freeAfterSnapshot {
		go debug.FreeOSMemory()
	}
}

// hclogFor routes hashicorp/raft's logs into slog.
func hclogFor(l *slog.Logger) hclog.Logger {
	std := slog.NewLogLogger(l.With("component", "raft").Handler(), slog.LevelInfo)
	return hclog.FromStandardLogger(std, &hclog.LoggerOptions{Name: "raft", Level: hclog.Info})
}

// Reload reads the TLS certificate, key and CA files and the token file
// again (SIGHUP). On an error the node keeps what it has.
func (n *Node) Reload() error {
	var errs []error
	if n.tls != nil {
		if err := n.tls.reload(); err != nil {
			errs = append(errs, err)
		} else {
			n.log.Info("TLS material reloaded")
		}
	}
	if n.auth != nil {
		if err := n.auth.reload(); err != nil {
			errs = append(errs, err)
		} else {
			n.log.Info("auth tokens reloaded")
		}
	}
	return errors.Join(errs...)
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Addr returns the node's advertised address.
func (n *Node) Addr() string { return n.cfg.Advertise }

// Raft exposes the node's Raft instance to tests and tools.
func (n *Node) Raft() *raft.Raft { return n.raft }

// IsLeader reports whether this node leads and has taken office.
func (n *Node) IsLeader() bool { return n.currentOffice() != nil }

// Leader returns the address and id of the leader this node knows of.
func (n *Node) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// ---- leadership and cluster time ----

func (n *Node) leaderLoop() {
	leave := func() {}
	defer func() { leave() }()
	for {
		select {
		case isLeader := <-n.raft.LeaderCh():
			leave()
			n.setOffice(nil)
			if isLeader {
				ctx, cancel := context.WithCancel(context.Background())
				leave = cancel
				n.wg.Add(1)
				go func() { defer n.wg.Done(); n.takeOffice(ctx) }()
			}
		case <-n.shutdownCh:
			n.setOffice(nil)
			return
		}
	}
}

// takeOffice runs while this node leads. It waits until every entry of
// earlier terms is applied (Barrier), takes the cluster time of the last
// applied entry as its base, records its first tick, and from then on
// stamps every entry and proposes expiries (DESIGN.md section 4).
func (n *Node) takeOffice(ctx context.Context) {
	term := n.raft.CurrentTerm()
	for {
		err := n.raft.Barrier(n.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		if ctx.Err() != nil || n.raft.State() != raft.Leader {
			return
		}
		n.log.Warn("barrier on taking office failed; retrying", "err", err)
	}
	o := &office{term: term, base: n.fsm.Now(), start: n.clock.Now(), wallStart: n.clock.Wall(), wallBug: n.cfg.UnsafeBug == BugWallClock}
	if _, err := n.applyLocal(o, tickCommand()); err != nil {
		n.log.Warn("first tick of the term failed", "err", err)
		return
	}
	if ctx.Err() != nil {
		return
	}
	n.setOffice(o)
	n.log.Info("took office", "term", term, "cluster_time", time.Duration(o.base))
	n.tickLoop(ctx, o)
}

func tickCommand() []byte { return (&fsm.Command{Op: fsm.OpTick}).Encode(nil) }

// tickLoop proposes a tick whenever a lock or wait deadline has passed in
// cluster time, or the log has been idle for TickInterval.
func (n *Node) tickLoop(ctx context.Context, o *office) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		changed := n.fsm.Changed()
		var last, next int64
		n.fsm.Read(func(t *fsm.Table) { last, next = t.Now(), t.NextDeadline() })
		due := last + int64(n.cfg.TickInterval)
		if next != 0 && next < due {
			due = next
		}
		if now := o.stamp(n.clock); now >= due {
			if _, err := n.applyLocal(o, tickCommand()); err != nil {
				if ctx.Err() != nil {
					return
				}
				n.log.Warn("tick failed", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			continue
		} else {
			timer.Reset(time.Duration(due - now))
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (n *Node) setOffice(o *office) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.office == o {
		return
	}
	n.office = o
	close(n.officeCh)
	n.officeCh = make(chan struct{})
}

func (n *Node) currentOffice() *office {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.office
}

// ClusterNow returns the cluster time as this node best knows it: the
// leader's stamp, or the time of the last applied entry.
func (n *Node) ClusterNow() int64 {
	if o := n.currentOffice(); o != nil {
		return o.stamp(n.clock)
	}
	return n.fsm.Now()
}

// ---- writes ----

// errNotReady: this node cannot take a write now, and did not try; the
// write may be retried at once.
var errNotReady = errors.New("leader not ready")

// applyLocal stamps an encoded command with the leader's cluster time and
// commits it.
func (n *Node) applyLocal(o *office, encoded []byte) (*fsm.Result, error) {
	buf := make([]byte, len(encoded))
	copy(buf, encoded)
	fsm.StampTime(buf, o.stamp(n.clock))
	f := n.raft.Apply(buf, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return nil, err
	}
	r, ok := f.Response().(*fsm.Result)
	if !ok {
		return nil, fmt.Errorf("unexpected apply response %T", f.Response())
	}
	return r, nil
}

// propose commits a command through the leader (this node or, forwarded,
// another) and returns its result. Every command proposed here is safe to
// apply twice (it has a request id, or is a tick or a cancel), so it is
// retried across leader changes until ctx ends or no leader shows up
// within the apply timeout.
func (n *Node) propose(ctx context.Context, c *fsm.Command) (*fsm.Result, error) {
	encoded := c.Encode(nil)
	var last error
	deadline := time.Now().Add(2 * n.cfg.ApplyTimeout)
	for backoff := 2 * time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		select {
		case <-n.shutdownCh:
			return nil, ErrShuttingDown
		default:
		}
		r, err := n.proposeOnce(ctx, encoded)
		if err == nil {
			return r, nil
		}
		if !retryable(err) {
			return nil, err
		}
		last = err
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %v", ErrNoLeader, last)
		}
		if err := n.pause(ctx, backoff); err != nil {
			return nil, fmt.Errorf("%w (last error: %v)", err, last)
		}
	}
}

func (n *Node) proposeOnce(ctx context.Context, encoded []byte) (*fsm.Result, error) {
	if o := n.currentOffice(); o != nil && n.raft.State() == raft.Leader {
		return n.applyLocal(o, encoded)
	}
	addr, _ := n.Leader()
	if addr == "" || addr == n.cfg.Advertise {
		return nil, errNotReady
	}
	return n.peers.propose(ctx, addr, encoded)
}

// pause waits d, or until the office changes, ctx ends or the node shuts
// down.
func (n *Node) pause(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	ch := n.officeCh
	n.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.shutdownCh:
		return ErrShuttingDown
	}
	return nil
}

// retryable reports whether a failed proposal may be sent again: the
// leader changed, is not known yet, or could not be reached.
func retryable(err error) bool {
	switch {
	case errors.Is(err, errNotReady), errors.Is(err, errPeerUnavailable),
		errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrAbortedByRestore):
		return true
	}
	return false
}

// ---- waiting Acquires ----

func (n *Node) observe(r *fsm.Result) {
	if n.cfg.Journal != nil {
		n.journal(r)
	}
	n.met.observe(r)
	for _, ev := range r.Events {
		n.hub.publish(ev)
	}
}

// awaitOutcome waits until the waiting Acquire rid is resolved on this
// node's lock table. If the caller goes away first, the Acquire is
// withdrawn. If no resolution arrives within the wait plus a grace period
// (no leader to time it out), the outcome is reported unknown: the caller
// asks later with its request id rather than assume it holds nothing.
func (n *Node) awaitOutcome(ctx context.Context, s *subscription, wait time.Duration) (fsm.Result, error) {
	guard := time.NewTimer(wait + 4*n.cfg.ElectionTimeout + n.cfg.ApplyTimeout)
	defer guard.Stop()
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	for {
		select {
		case ev := <-s.ch:
			return ev, nil
		case <-recheck.C:
			// A follower that installed a snapshot skipped the entries,
			// and their events, in between.
			if r, ok := n.localOutcome(s.rid); ok && r.Code != fsm.CodePending {
				return r, nil
			}
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.ApplyTimeout)
			_, err := n.propose(cctx, &fsm.Command{Op: fsm.OpCancelWait, RequestID: s.rid})
			cancel()
			if err != nil {
				n.log.Warn("could not withdraw the acquire of a departed caller", "request_id", s.rid, "err", err)
			}
			return fsm.Result{}, ctx.Err()
		case <-guard.C:
			return fsm.Result{}, fmt.Errorf("%w: the acquire with request id %q was not resolved in time; ask GetRequestOutcome", ErrOutcomeUnknown, s.rid)
		case <-n.shutdownCh:
			return fsm.Result{}, fmt.Errorf("%w: the acquire with request id %q still waits; retry it elsewhere with the same request id", ErrShuttingDown, s.rid)
		}
	}
}

func (n *Node) localOutcome(rid string) (r fsm.Result, ok bool) {
	n.fsm.Read(func(t *fsm.Table) { r, ok = t.Outcome(rid) })
	return r, ok
}

// ---- linearizable reads ----

// readBarrier returns once this node's lock table reflects every write
// committed before the call (the ReadIndex protocol: the leader confirms
// its leadership, and the read waits for that commit index to be applied
// here), along with the leader's cluster time.
func (n *Node) readBarrier(ctx context.Context) (int64, error) {
	var last error
	deadline := time.Now().Add(2 * n.cfg.ApplyTimeout)
	for backoff := 2 * time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		index, now, err := n.readIndexOnce(ctx)
		if err == nil {
			if err := n.waitApplied(ctx, index); err != nil {
				return 0, err
			}
			return now, nil
		}
		if !retryable(err) {
			return 0, err
		}
		last = err
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%w: %v", ErrNoLeader, last)
		}
		if err := n.pause(ctx, backoff); err != nil {
			return 0, fmt.Errorf("%w (last error: %v)", err, last)
		}
	}
}

func (n *Node) readIndexOnce(ctx context.Context) (uint64, int64, error) {
	if o := n.currentOffice(); o != nil && n.raft.State() == raft.Leader {
		return n.localReadIndex(o)
	}
	addr, _ := n.Leader()
	if addr == "" || addr == n.cfg.Advertise {
		return 0, 0, errNotReady
	}
	return n.peers.readIndex(ctx, addr)
}

func (n *Node) localReadIndex(o *office) (uint64, int64, error) {
	index := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, 0, err
	}
	return index, o.stamp(n.clock), nil
}

// waitApplied waits until this node's lock table has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	t := time.NewTimer(n.cfg.ApplyTimeout)
	defer t.Stop()
	for {
		ch := n.fsm.Changed()
		if n.fsm.Applied() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%w: this node has not applied index %d in time", ErrNoLeader, index)
		case <-n.shutdownCh:
			return ErrShuttingDown
		}
	}
}

// ---- membership ----

// joinLoop asks the cluster at cfg.Join to add this node, until it does.
func (n *Node) joinLoop() {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ApplyTimeout)
		err := n.peers.addMember(ctx, n.cfg.Join, n.cfg.ID, n.cfg.Advertise)
		cancel()
		if err == nil {
			n.log.Info("joined the cluster", "via", n.cfg.Join)
			return
		}
		n.log.Warn("join failed; retrying", "via", n.cfg.Join, "err", err)
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(backoff):
		}
	}
}

// Ready reports whether the node knows a leader and has applied everything
// it knows to be committed (waiting up to one second for that).
func (n *Node) Ready(ctx context.Context) bool {
	if addr, _ := n.Leader(); addr == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return n.waitApplied(ctx, n.raft.CommitIndex()) == nil
}

// ---- shutdown ----

// Shutdown stops the node gracefully: it stops taking new waits, hands
// leadership to another voter if it leads, drains the API, then stops
// Raft and closes its storage and port. It is safe to call more than once.
func (n *Node) Shutdown(ctx context.Context) error {
	return n.stop(ctx, true)
}

// Close stops the node abruptly: no hand-off, no draining. Tests use it to
// simulate a crash; it is safe to call more than once.
func (n *Node) Close() error {
	return n.stop(context.Background(), false)
}

func (n *Node) stop(ctx context.Context, graceful bool) error {
	first := false
	n.shutdownOnce.Do(func() { first = true })
	if !first {
		<-n.stopped
		return nil
	}
	defer close(n.stopped)
	n.log.Info("node stopping", "graceful", graceful)
	close(n.shutdownCh)
	var errs []error
	if graceful {
		ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
		defer cancel()
		if n.raft.State() == raft.Leader && n.otherVoters() > 0 {
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.log.Warn("leadership transfer failed", "err", err)
			}
		}
		if err := n.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain http: %w", err))
		}
	}
	_ = n.srv.Close()
	if err := n.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("stop raft: %w", err))
	}
	_ = n.trans.Close()
	n.port.close()
	n.peers.close()
	n.wg.Wait()
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close raft store: %w", err))
	}
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

// otherVoters counts the voters of the latest configuration besides this
// node.
func (n *Node) otherVoters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	count := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter && string(srv.ID) != n.cfg.ID {
			count++
		}
	}
	return count
}

// newRequestID returns a server-chosen request id for calls that came
// without one, so the node's own retries stay exactly-once.
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "srv-" + hex.EncodeToString(b[:])
}
