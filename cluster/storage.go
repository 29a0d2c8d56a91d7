package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"go.etcd.io/bbolt"
)

// The log stores a node can keep its Raft log in (Config.LogStore,
// --log-store).
const (
	// LogStoreAuto: raft-wal for a new data directory, raft-boltdb for one
	// that already holds raft.db.
	LogStoreAuto = "auto"
	// LogStoreWAL: hashicorp/raft-wal, segment files under wal/, one fsync
	// per append.
	LogStoreWAL = "wal"
	// LogStoreBolt: raft-boltdb/v2, raft.db, two fsyncs per append.
	LogStoreBolt = "bolt"
)

// Files and folders of a data directory.
const (
	boltFile = "raft.db"
	walDir   = "wal"
)

// storage is a node's Raft storage under its data directory: the log
// (behind a cache of recent entries), the stable store (term and vote,
// in the same store as the log) and file snapshots.
type storage struct {
	// kind is LogStoreWAL or LogStoreBolt.
	kind string
	// logs is the log store Raft uses: a cache in front of the store.
	logs raft.LogStore
	// stable keeps the current term and vote.
	stable raft.StableStore
	// snaps keeps snapshots under snapshots/.
	snaps raft.SnapshotStore
	// hlog is hashicorp's logger interface over the node's slog logger.
	hlog hclog.Logger
	// close closes the log store.
	close func() error
}

// openStorage opens (or creates) the Raft storage of cfg.DataDir with the
// log store cfg.LogStore asks for, refusing a choice the directory
// contradicts.
func openStorage(cfg Config, log *slog.Logger) (*storage, error) {
	kind, err := chooseLogStore(cfg.DataDir, cfg.LogStore)
	if err != nil {
		return nil, err
	}
	s := &storage{kind: kind, hlog: hclogFor(log)}
	var store interface {
		raft.LogStore
		raft.StableStore
	}
	switch kind {
	case LogStoreWAL:
		dir := filepath.Join(cfg.DataDir, walDir)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("open raft log: %w", err)
		}
		// raft-wal v0.4.0's Close leaves its metadata database open (and
		// its file locked, so the node could not open it again in this
		// process): the node opens and closes that database itself.
		meta := &metadb.BoltMetaDB{}
		segment := wal.DefaultSegmentSize
		if cfg.WALSegmentSize > 0 {
			segment = cfg.WALSegmentSize
		}
		w, err := wal.Open(dir, wal.WithLogger(s.hlog.Named("wal")), wal.WithMetaStore(meta), wal.WithSegmentSize(segment))
		if err != nil {
			_ = meta.Close()
			return nil, fmt.Errorf("open raft log (raft-wal in %s): %w", dir, err)
		}
		store, s.close = w, func() error { return errors.Join(w.Close(), meta.Close()) }
	default:
		path := filepath.Join(cfg.DataDir, boltFile)
		b, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: boltOptions()})
		if err != nil {
			return nil, fmt.Errorf("open raft log (raft-boltdb %s): %w", path, err)
		}
		store, s.close = b, b.Close
		if cfg.LogStore == LogStoreAuto {
			log.Info("keeping raft-boltdb: this data directory was created with it (to move to raft-wal, empty the data directory and let the node rejoin)", "path", path)
		}
	}
	s.stable = store
	if s.logs, err = raft.NewLogCache(1024, store); err != nil {
		_ = s.close()
		return nil, err
	}
	if s.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 3, s.hlog); err != nil {
		_ = s.close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return s, nil
}

// chooseLogStore decides which log store a data directory uses.
func chooseLogStore(dataDir, want string) (string, error) {
	hasBolt := exists(filepath.Join(dataDir, boltFile))
	hasWAL := !emptyDir(filepath.Join(dataDir, walDir))
	switch {
	case hasBolt && hasWAL:
		return "", fmt.Errorf("%w: data directory %s holds both %s (raft-boltdb) and %s/ (raft-wal); keep one", ErrInvalidConfig, dataDir, boltFile, walDir)
	case want == LogStoreWAL && hasBolt:
		return "", fmt.Errorf("%w: --log-store wal, but data directory %s holds %s (raft-boltdb); use --log-store bolt (or auto), or empty the data directory and let the node rejoin", ErrInvalidConfig, dataDir, boltFile)
	case want == LogStoreBolt && hasWAL:
		return "", fmt.Errorf("%w: --log-store bolt, but data directory %s holds %s/ (raft-wal); use --log-store wal (or auto), or empty the data directory and let the node rejoin", ErrInvalidConfig, dataDir, walDir)
	case want == LogStoreBolt, want == LogStoreAuto && hasBolt:
		return LogStoreBolt, nil
	}
	return LogStoreWAL, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func emptyDir(path string) bool {
	entries, err := os.ReadDir(path)
	return errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0)
}

// hasState reports whether the storage already holds Raft state (a
// restart, not a first start).
func (s *storage) hasState() (bool, error) {
	existing, err := raft.HasExistingState(s.logs, s.stable, s.snaps)
	if err != nil {
		return false, fmt.Errorf("inspect raft state: %w", err)
	}
	return existing, nil
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

// transportTimeout bounds one Raft RPC (and the write of a snapshot chunk).
const transportTimeout = 10 * time.Second

// raftConfig is hashicorp/raft's configuration for a node.
func raftConfig(cfg Config, hlog hclog.Logger) *raft.Config {
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
	return rc
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
