package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/raftlock/raftlock/fsm"
	"github.com/raftlock/raftlock/fsm/raftfsm"
)

// Node is one raftlock server: a Raft member with its lock table, serving
// the API on its one port.
//
// One request, start to end (a waiting Acquire on a follower): the HTTP
// server (http.go) hands the call to connect-go, whose interceptors count it
// (metrics.go), map its error to a code on the way out (errors.go) and check
// its token (auth.go); lockservice.go validates it and builds an
// fsm.Command; waiting.go subscribes to its request id in the hub and
// proposes it (propose.go), which on a follower forwards the encoded command
// to the leader (forward.go → peerservice.go there), where it is stamped
// with cluster time (office.go) and committed through Raft. Every node
// applies the entry (fsm/raftfsm); the apply goroutine hands each result's
// Events to the hub (Node.observe), which wakes the handler waiting on that
// request id, on whichever node it runs. If the handler ends without
// delivering a grant, it abandons its attempt (waiting.go), so no key is
// held by a caller that is gone.
type Node struct {
	// cfg is the validated configuration, defaults filled in.
	cfg Config
	// log is the node's logger, tagged with its id.
	log *slog.Logger
	// clock is the time source of cluster time (Config.Clock, or the
	// deliberately broken one of an unsafe build, see unsafe.go).
	clock Clock

	// fsm is the lock table behind Raft's FSM interface.
	fsm *raftfsm.FSM
	// raft is the Raft member.
	raft *raft.Raft
	// store is the Raft log, stable store and snapshot store on disk.
	store *storage
	// trans carries Raft's RPCs over the port's Raft streams.
	trans *raft.NetworkTransport
	// port is the one TCP port, split into Raft streams and HTTP.
	port *port
	// tls is the TLS material of the port; nil without TLS.
	tls *tlsState
	// auth holds the bearer tokens; nil without --auth-tokens.
	auth *authorizer
	// srv is the HTTP server of the API, health and metrics.
	srv *http.Server
	// peers are the clients of other nodes (forwarding, versions, joins).
	peers *peers
	// hub hands the resolutions of waiting Acquires to their handlers.
	hub *hub
	// watches fans applied changes out to Watch streams (watchhub.go).
	watches *watchHub
	// met are the node's Prometheus metrics.
	met *metrics
	// versions is what this node knows of the members' supported versions.
	versions *versions
	// abandons bounds and tracks the background withdrawals of departed
	// callers' Acquires.
	abandons *abandons
	// incarnation is this run's, in the high bits of its attempts;
	// prevIncarnation the previous run's (0: none), abandoned at start.
	incarnation, prevIncarnation uint32
	// attempts counts the attempts made in this incarnation.
	attempts atomic.Uint32
	// synced is set once this node's table has applied an index the leader
	// confirmed after the node started (caughtUp).
	synced atomic.Bool
	// clusterID is the cluster's id as this node knows it (clusterid.go).
	clusterID *clusterIdentity
	// backups serialises restores and tells the leader loop to take office
	// again after one (backup.go).
	backups *backups

	// mu guards office and officeCh.
	mu sync.Mutex
	// office is set while this node leads and has taken office.
	office *office
	// officeCh is closed and replaced whenever office changes.
	officeCh chan struct{}

	// shutdownCh is closed when the node starts shutting down.
	shutdownCh chan struct{}
	// shutdownOnce makes stop run once.
	shutdownOnce sync.Once
	// raftDown is closed once stop has shut Raft down.
	raftDown chan struct{}
	// stopped is closed when stop has finished.
	stopped chan struct{}
	// wg counts the node's goroutines; stop waits for them.
	wg sync.WaitGroup
}

// Start opens the node's storage, binds its port, starts Raft and serves.
// It returns once the node is serving; it does not wait for a leader. On
// an error it undoes what it did.
func Start(cfg Config) (n *Node, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n = &Node{
		cfg: cfg, log: cfg.Logger.With("node", cfg.ID), clock: unsafeClock(cfg),
		hub: newHub(), versions: newVersions(), officeCh: make(chan struct{}),
		watches:    newWatchHub(cfg.WatchBuffer, watchHistory, cfg.MaxWatches),
		shutdownCh: make(chan struct{}), raftDown: make(chan struct{}), stopped: make(chan struct{}),
	}
	n.abandons = newAbandons(n)
	n.backups = newBackups()
	var undo undoList
	defer func() {
		if err != nil {
			undo.run()
		}
	}()

	// 1. The data directory and the port: TLS and tokens first, so the
	// port never serves without them.
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if n.prevIncarnation, n.incarnation, err = newIncarnation(cfg.DataDir); err != nil {
		return nil, err
	}
	ln, err := n.listen(&undo)
	if err != nil {
		return nil, err
	}

	// 2. Storage: the Raft log (raft-wal or raft-boltdb), the stable store
	// and file snapshots, all under the data directory.
	if n.store, err = openStorage(cfg, n.log); err != nil {
		return nil, err
	}
	undo.add(func() { _ = n.store.close() })

	// 3. Raft: its transport over the port's Raft streams, the lock table
	// with its hooks (snapshots are rebuilt from the last one and the log,
	// off the write path: fsm/raftfsm/replay.go), the cluster id (derived
	// by the founders: clusterid.go), and Raft itself, bootstrapped on first
	// start unless the node joins.
	existing, err := n.startRaft(&undo)
	if err != nil {
		return nil, err
	}

	// 4. Serve, and run the node's loops: leadership (office.go), the
	// versions of the members (version.go) and, for a new node, joining.
	n.peers = newPeers(cfg.Dialer, n.tls)
	n.srv = n.newHTTPServer()
	n.goRun(n.port.serve)
	n.goRun(n.serveHTTP)
	n.goRun(n.leaderLoop)
	n.goRun(n.versionLoop)
	n.goRun(n.abandonPrevious)
	if !existing && cfg.Join != "" {
		n.goRun(n.joinLoop)
	}
	if cfg.UnsafeBug != "" {
		n.log.Warn("THIS NODE IS DELIBERATELY BROKEN (--unsafe-bug); for testing the fault suite only", "bug", cfg.UnsafeBug)
	}
	n.log.Info("node started", "listen", ln.Addr().String(), "advertise", cfg.Advertise, "data_dir", cfg.DataDir,
		"log_store", n.store.kind, "existing_state", existing, "join", cfg.Join, "initial_cluster", len(cfg.InitialCluster),
		"supported_version", fsm.SupportedVersion)
	return n, nil
}

// startRaft makes Raft's transport, the lock table (every applied result
// goes to the hub, the metrics and, for the fault suite, the journal) and
// the Raft member, bootstrapping the cluster on a first start unless the
// node joins one. It reports whether the storage held state already.
func (n *Node) startRaft(undo *undoList) (existing bool, err error) {
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  newStreamLayer(n.port.raft, n.cfg, n.tls),
		MaxPool: 4, Timeout: transportTimeout, Logger: n.store.hlog,
	})
	undo.add(func() { _ = n.trans.Close() })
	n.met = newMetrics(n)
	n.fsm = raftfsm.New(fsm.DefaultConfig(), n.fsmHooks(), raftfsm.WithReplay(n.store.logs, n.store.snaps))
	if existing, err = n.store.hasState(); err != nil {
		return false, err
	}
	if err := n.loadClusterID(existing); err != nil {
		return false, err
	}
	if n.raft, err = raft.NewRaft(raftConfig(n.cfg, n.store.hlog), n.fsm, n.store.logs, n.store.stable, n.store.snaps, n.trans); err != nil {
		return false, fmt.Errorf("start raft: %w", err)
	}
	undo.add(func() { _ = n.raft.Shutdown().Error() })
	if !existing && n.cfg.Join == "" {
		if err := n.bootstrap(); err != nil {
			return false, err
		}
	}
	return existing, nil
}

// listen binds the port (or takes Config.Listener) and loads TLS and the
// token file.
func (n *Node) listen(undo *undoList) (net.Listener, error) {
	ln := n.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", n.cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	undo.add(func() { _ = ln.Close() })
	var err error
	if n.cfg.TLS != nil {
		if n.tls, err = newTLSState(*n.cfg.TLS); err != nil {
			return nil, err
		}
	}
	if n.cfg.AuthTokens != "" {
		if n.auth, err = newAuthorizer(n.cfg.AuthTokens); err != nil {
			return nil, err
		}
	}
	n.port = newPort(ln, n.tls)
	return ln, nil
}

// fsmHooks connects the lock table to the node: results to observe,
// restores to the journal, the memory of large snapshots back to the
// system, an entry this build cannot apply to a clear stop, and a snapshot
// that had to stop writes to the log.
func (n *Node) fsmHooks() raftfsm.Hooks {
	h := raftfsm.Hooks{Applied: n.observe, SnapshotReleased: releaseSnapshotMemory, Fatal: n.cfg.OnFatal,
		SnapshotUnderLock: func(reason error) {
			n.log.Warn("snapshot encoded under the table's lock (writes wait for it): it could not be rebuilt from the last snapshot and the log", "reason", reason)
		}}
	h.Restored = func(index uint64) {
		n.watches.restored(index)
		n.met.locks.restored()
		if n.cfg.Journal != nil {
			n.journalRestore(index)
		}
	}
	return h
}

// bootstrap writes the founding configuration: the initial cluster, or
// this node alone.
func (n *Node) bootstrap() error {
	servers := []raft.Server{{ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(n.cfg.Advertise)}}
	if len(n.cfg.InitialCluster) > 0 {
		servers = servers[:0]
		for _, p := range n.cfg.InitialCluster {
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
		}
	}
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

func (n *Node) serveHTTP() {
	if err := n.srv.Serve(n.port.http); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		n.log.Error("http server stopped", "err", err)
	}
}

// goRun runs fn on a goroutine that stop waits for.
func (n *Node) goRun(fn func()) {
	n.wg.Add(1)
	go func() { defer n.wg.Done(); fn() }()
}

// undoList collects what Start must undo, in reverse, when a later step
// fails.
type undoList []func()

func (u *undoList) add(fn func()) { *u = append(*u, fn) }

func (u undoList) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// Reload reads the TLS certificate, key and CA files and the token file
// again (SIGHUP). On an error the node keeps what it has, and says so in
// one line per part.
func (n *Node) Reload() error {
	var errs []error
	if n.tls != nil {
		if err := n.tls.reload(); err != nil {
			n.log.Error("TLS material not reloaded; keeping the old certificates", "err", err)
			errs = append(errs, err)
		} else {
			n.log.Info("TLS material reloaded")
		}
	}
	if n.auth != nil {
		if err := n.auth.reload(); err != nil {
			n.log.Error("auth tokens not reloaded; keeping the old tokens", "err", err)
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
func (n *Node) IsLeader() bool { return n.leading() != nil }

// Leader returns the address and id of the leader this node knows of.
func (n *Node) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// TableHash returns the index of the last command applied to this node's
// lock table and a hash of the table's state: two replicas at the same
// index must have the same hash (tests check it at the end of failovers).
func (n *Node) TableHash() (uint64, string) {
	var index uint64
	var hash string
	n.fsm.Read(func(t *fsm.Table) { index, hash = t.Index(), tableHash(t) })
	return index, hash
}
