package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Peer is a member of the founding configuration.
type Peer struct {
	ID      string
	Address string
}

// ParseInitialCluster parses "n1=host:port,n2=host:port,...".
func ParseInitialCluster(s string) ([]Peer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var peers []Peer
	seenID, seenAddr := map[string]bool{}, map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("initial-cluster: %q is not id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("initial-cluster: %q: %w", part, err)
		}
		if seenID[id] || seenAddr[addr] {
			return nil, fmt.Errorf("initial-cluster: %q appears twice", part)
		}
		seenID[id], seenAddr[addr] = true, true
		peers = append(peers, Peer{ID: id, Address: addr})
	}
	return peers, nil
}

// Dialer opens connections to other nodes (Raft and forwarding). Tests and
// the fault suite replace it to cut links or bind a source address.
type Dialer func(ctx context.Context, network, address string) (net.Conn, error)

// Clock is the node's time source. Cluster time uses only Now and only
// through differences (t.Sub), which Go computes from the monotonic
// reading; Wall is the wall clock, which nothing that decides expiry reads.
type Clock interface {
	// Now returns the current time with a monotonic reading.
	Now() time.Time
	// Wall returns the wall-clock time, without a monotonic reading.
	Wall() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time  { return time.Now() }
func (systemClock) Wall() time.Time { return time.Now().Round(0) } // no monotonic reading

// Config configures a Node. Durations are wall durations unless they say
// otherwise.
type Config struct {
	// ID is the node's Raft server id. Default: the id given to this node's
	// address in InitialCluster, else "n1".
	ID string
	// Listen is the host:port of the node's one port. Default 127.0.0.1:7070.
	Listen string
	// Advertise is the host:port other nodes and clients use to reach this
	// node. Default: Listen (which must then not be a wildcard address).
	Advertise string
	// DataDir holds the Raft log, stable store and snapshots. Default ./data.
	DataDir string
	// LogStore is the Raft log's store: LogStoreAuto (default: raft-wal for
	// a new data directory, raft-boltdb for one that holds raft.db),
	// LogStoreWAL or LogStoreBolt. A choice the data directory contradicts
	// is refused at start.
	LogStore string
	// WALSegmentSize is the size of raft-wal's segment files, in bytes (0:
	// raft-wal's default, 64 MiB). The log is truncated after a snapshot
	// one whole segment at a time.
	WALSegmentSize int
	// InitialCluster lists every founding member, the same on each founder.
	// Empty and no Join: a single-node cluster of this node.
	InitialCluster []Peer
	// Join is the address of any member of a running cluster to join
	// through.
	Join string

	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout are Raft's
	// failure-detection timings.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how long Raft waits before sending a heartbeat that
	// carries the commit index when nothing else is sent.
	CommitTimeout time.Duration
	// MaxAppendEntries caps the entries in one AppendEntries RPC, and so the
	// size of a group commit.
	MaxAppendEntries int
	// SnapshotInterval is how often Raft checks whether to snapshot;
	// SnapshotThreshold is how many new entries make it snapshot;
	// TrailingLogs is how many entries stay in the log after a snapshot.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64

	// ApplyTimeout bounds how long a write waits to be committed.
	ApplyTimeout time.Duration
	// TickInterval is how often an idle leader records cluster time in the
	// log, so time keeps moving and a failover pauses it only briefly.
	TickInterval time.Duration
	// MaxRequestBytes is the largest request body the API accepts.
	MaxRequestBytes int
	// WatchBuffer is how many selected events may wait to be sent to one
	// Watch stream; a stream that falls further behind is cut off with
	// resource_exhausted.
	WatchBuffer int
	// MaxWatches is how many Watch streams the node serves at once.
	MaxWatches int
	// WatchHeartbeat is how often a Watch stream says its applied index
	// when nothing else is sent.
	WatchHeartbeat time.Duration
	// ShutdownTimeout bounds the graceful part of Shutdown.
	ShutdownTimeout time.Duration

	// Per-lock metrics (lockmetrics.go): a key is counted under its first
	// MetricsPrefixDepth segments (0 to 16; 0: every key under the prefix
	// "", so no key text appears in labels) cut at MetricsPrefixSeparator
	// (empty: ":"); at most MetricsMaxPrefixes (1 to 10000; 0: 100) distinct
	// prefixes get a label, the rest count as "other"; the MetricsBusiestKeys
	// (0 to 1000; 0: none) longest queues are reported by key. DefaultConfig
	// sets depth 1 and 10 busiest keys.
	MetricsPrefixDepth     int
	MetricsPrefixSeparator string
	MetricsMaxPrefixes     int
	MetricsBusiestKeys     int

	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Listener, when set, is used instead of listening on Listen (tests use
	// port 0 this way). The node closes it on shutdown.
	Listener net.Listener
	// Dialer opens connections to other nodes. Default: a net.Dialer.
	Dialer Dialer
	// Clock is the time source. Default: the system clock.
	Clock Clock
	// OnFatal is called when the node meets a log entry it cannot apply
	// (corrupt, or of a version newer than this build): the error names the
	// index and both versions. It must not return; the node binary logs the
	// error and exits. Default (nil): a panic with the same message.
	OnFatal func(error)

	// TLS, when set, makes every connection to the port TLS, with mutual
	// TLS between nodes.
	TLS *TLS

	// AuthTokens is the path of a TokenFile. When set, every API call needs
	// a bearer token from it (or a node certificate) and is limited to the
	// token's verbs and key prefixes. Requires TLS: tokens must not cross
	// the network in clear, and the node-to-node API must be closed to
	// anyone without a node certificate.
	AuthTokens string

	// Debug serves /debug/state (applied index and a hash of the lock
	// table, for comparing replicas) and /debug/pprof. Off by default.
	Debug bool
	// Journal, when set, receives one JSON line per applied Raft entry (and
	// one per snapshot restore): the fault suite's record of what each
	// replica applied. Off by default; costs a write per entry.
	Journal io.Writer
	// UnsafeBug deliberately breaks the node, for proving that the fault
	// suite catches bugs; never set it in production. Values: "" (none),
	// "fencing" (every Acquire answers fencing token 1), "wallclock" (the
	// leader stamps cluster time from the wall clock).
	UnsafeBug string
}

// DefaultConfig returns the configuration of `go run ./cmd/node` with no
// flags: one node on 127.0.0.1:7070 with data in ./data.
func DefaultConfig() Config {
	return Config{
		Listen:             "127.0.0.1:7070",
		DataDir:            "data",
		LogStore:           LogStoreAuto,
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		MaxAppendEntries:   256,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  16384,
		TrailingLogs:       10240,
		ApplyTimeout:       5 * time.Second,
		TickInterval:       time.Second,
		MaxRequestBytes:    256 << 10,
		WatchBuffer:        DefaultWatchBuffer,
		MaxWatches:         DefaultMaxWatches,
		WatchHeartbeat:     5 * time.Second,
		ShutdownTimeout:    10 * time.Second,

		MetricsPrefixDepth:     DefaultMetricsPrefixDepth,
		MetricsPrefixSeparator: DefaultMetricsPrefixSeparator,
		MetricsMaxPrefixes:     DefaultMetricsMaxPrefixes,
		MetricsBusiestKeys:     DefaultMetricsBusiestKeys,
	}
}

// Deliberate bugs (Config.UnsafeBug).
const (
	BugFencing   = "fencing"
	BugWallClock = "wallclock"
)

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("invalid configuration")

func badConfig(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// Validate reports the first invalid setting, naming its flag.
func (c Config) Validate() error {
	if err := c.validateAddresses(); err != nil {
		return err
	}
	return c.validateSettings()
}

// validateAddresses checks where the node listens, what it advertises, and
// how it finds its cluster.
func (c Config) validateAddresses() error {
	bad := badConfig
	if c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return bad("--listen %q: %v", c.Listen, err)
		}
	}
	host, port, err := net.SplitHostPort(c.Advertise)
	if err != nil {
		return bad("--advertise %q: %v", c.Advertise, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) || port == "0" {
		return bad("--advertise %q must be an address other nodes can dial (set --advertise when --listen is a wildcard or port 0)", c.Advertise)
	}
	if c.ID == "" {
		return bad("--id must not be empty")
	}
	if c.DataDir == "" {
		return bad("--data-dir must not be empty")
	}
	if len(c.InitialCluster) > 0 && c.Join != "" {
		return bad("--initial-cluster and --join exclude each other")
	}
	if len(c.InitialCluster) > 0 {
		found := false
		for _, p := range c.InitialCluster {
			if p.ID == c.ID {
				found = true
				if p.Address != c.Advertise {
					return bad("--initial-cluster gives %s the address %s but --advertise is %s", p.ID, p.Address, c.Advertise)
				}
			}
		}
		if !found {
			return bad("--initial-cluster does not list this node's id %q", c.ID)
		}
	}
	return nil
}

// validateSettings checks timings, limits, security and storage.
func (c Config) validateSettings() error {
	bad := badConfig
	for name, d := range map[string]time.Duration{
		"HeartbeatTimeout": c.HeartbeatTimeout, "ElectionTimeout": c.ElectionTimeout,
		"LeaderLeaseTimeout": c.LeaderLeaseTimeout, "CommitTimeout": c.CommitTimeout,
		"SnapshotInterval": c.SnapshotInterval, "ApplyTimeout": c.ApplyTimeout,
		"TickInterval": c.TickInterval, "ShutdownTimeout": c.ShutdownTimeout,
	} {
		if d <= 0 {
			return bad("%s must be positive, got %s", name, d)
		}
	}
	if c.MaxRequestBytes < 1024 {
		return bad("MaxRequestBytes must be at least 1024, got %d", c.MaxRequestBytes)
	}
	if c.WatchBuffer < 1 || c.WatchBuffer > 1_000_000 {
		return bad("WatchBuffer must be 1 to 1000000 events, got %d", c.WatchBuffer)
	}
	if c.MaxWatches < 1 || c.MaxWatches > 100_000 {
		return bad("MaxWatches must be 1 to 100000, got %d", c.MaxWatches)
	}
	if err := c.validateMetrics(); err != nil {
		return err
	}
	if c.WatchHeartbeat < 10*time.Millisecond {
		return bad("WatchHeartbeat must be at least 10ms, got %s", c.WatchHeartbeat)
	}
	if c.TLS != nil {
		if err := c.TLS.validate(); err != nil {
			return bad("%v", err)
		}
	}
	if c.AuthTokens != "" && c.TLS == nil {
		return bad("--auth-tokens needs TLS (--tls-cert, --tls-key, --tls-ca)")
	}
	switch c.UnsafeBug {
	case "", BugFencing, BugWallClock:
	default:
		return bad("--unsafe-bug %q is not one of %q, %q", c.UnsafeBug, BugFencing, BugWallClock)
	}
	if c.WALSegmentSize < 0 {
		return bad("WALSegmentSize must not be negative, got %d", c.WALSegmentSize)
	}
	switch c.LogStore {
	case LogStoreAuto, LogStoreWAL, LogStoreBolt:
	default:
		return bad("--log-store %q is not one of %q, %q, %q", c.LogStore, LogStoreAuto, LogStoreWAL, LogStoreBolt)
	}
	if c.MaxAppendEntries <= 0 {
		return bad("MaxAppendEntries must be positive, got %d", c.MaxAppendEntries)
	}
	return nil
}

// withDefaults fills in the derived defaults: advertise address, id,
// logger, dialer, clock.
func (c Config) withDefaults() Config {
	if c.Advertise == "" {
		if c.Listener != nil {
			c.Advertise = c.Listener.Addr().String()
		} else {
			c.Advertise = c.Listen
		}
	}
	if c.ID == "" {
		c.ID = "n1"
		for _, p := range c.InitialCluster {
			if p.Address == c.Advertise {
				c.ID = p.ID
			}
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = DefaultWatchBuffer
	}
	if c.MaxWatches == 0 {
		c.MaxWatches = DefaultMaxWatches
	}
	if c.WatchHeartbeat == 0 {
		c.WatchHeartbeat = 5 * time.Second
	}
	if c.MetricsPrefixSeparator == "" {
		c.MetricsPrefixSeparator = DefaultMetricsPrefixSeparator
	}
	if c.MetricsMaxPrefixes == 0 {
		c.MetricsMaxPrefixes = DefaultMetricsMaxPrefixes
	}
	if c.Dialer == nil {
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
		// Dial from the address this node listens on when it is a specific
		// IP, so that other nodes (and firewall rules) can tell which node
		// a connection comes from.
		if host, _, err := net.SplitHostPort(c.Listen); err == nil && c.Listener == nil {
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				d.LocalAddr = &net.TCPAddr{IP: ip}
			}
		}
		c.Dialer = d.DialContext
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.LogStore == "" {
		c.LogStore = LogStoreAuto
	}
	return c
}

// validateMetrics checks the per-lock metrics settings.
func (c Config) validateMetrics() error {
	if c.MetricsPrefixDepth < 0 || c.MetricsPrefixDepth > maxMetricsPrefixDepth {
		return badConfig("--metrics-prefix-depth must be 0 to %d segments, got %d", maxMetricsPrefixDepth, c.MetricsPrefixDepth)
	}
	if len(c.MetricsPrefixSeparator) > 8 {
		return badConfig("--metrics-prefix-separator must be at most 8 bytes, got %q", c.MetricsPrefixSeparator)
	}
	if c.MetricsMaxPrefixes < 0 || c.MetricsMaxPrefixes > maxMetricsMaxPrefixes {
		return badConfig("--metrics-max-prefixes must be 1 to %d, got %d", maxMetricsMaxPrefixes, c.MetricsMaxPrefixes)
	}
	if c.MetricsBusiestKeys < 0 || c.MetricsBusiestKeys > maxMetricsBusiestKeys {
		return badConfig("--metrics-busiest-keys must be 0 to %d, got %d", maxMetricsBusiestKeys, c.MetricsBusiestKeys)
	}
	return nil
}
