package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/fsm"
	"github.com/raftlock/raftlock/fsm/backup"
)

// snapshotTimeout is the least time snapshot save and restore get (a
// backup of a million locks is tens of MiB; --timeout may give more).
const snapshotTimeout = 10 * time.Minute

const snapshotUsage = "snapshot save FILE | snapshot inspect FILE | snapshot restore [--force] [--min-index N] FILE"

// snapshotCmd saves, inspects and restores backups (docs/backup.md):
//
//	snapshot save FILE       a backup from the cluster, written atomically
//	snapshot inspect FILE    check a file and print its header and counts (local)
//	snapshot restore FILE    restore a new cluster from a file (the leader does it)
//
// Flags of a subcommand come after its name.
func snapshotCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) == 0 {
			return usagef("snapshot needs save, inspect or restore")
		}
		sub := flag.NewFlagSet("lockctl snapshot "+args[0], flag.ContinueOnError)
		sub.SetOutput(io.Discard)
		e.g.register(sub)
		force := sub.Bool("force", false, "restore: replace what the cluster holds (locks, waiters, remembered request ids)")
		minIndex := sub.Uint64("min-index", 0, "restore: start the new log above this index too (the highest fencing token a resource saw, for a backup older than the lost cluster)")
		if err := sub.Parse(args[1:]); err != nil {
			return usagef("%v", err)
		}
		if sub.NArg() != 1 {
			return usagef("snapshot %s takes one FILE", args[0])
		}
		file := sub.Arg(0)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(e.g.timeout, snapshotTimeout))
		defer cancel()
		switch args[0] {
		case "save":
			return snapshotSave(ctx, e, file)
		case "inspect":
			return snapshotInspect(e, file)
		case "restore":
			return snapshotRestore(ctx, e, file, client.RestoreOptions{Force: *force, MinIndex: *minIndex})
		}
		return usagef("snapshot %q: want save, inspect or restore", args[0])
	}
}

// headerJSON is a backup header as lockctl prints it.
type headerJSON struct {
	FormatVersion  uint32 `json:"format_version,omitempty"`
	ClusterID      string `json:"cluster_id"`
	NodeID         string `json:"node_id"`
	Index          uint64 `json:"index"`
	Term           uint64 `json:"term"`
	ClusterTime    string `json:"cluster_time"`
	ClusterVersion uint32 `json:"cluster_version"`
	Created        string `json:"created,omitempty"`
	StateBytes     uint64 `json:"state_bytes"`
	StateSHA256    string `json:"state_sha256,omitempty"`
}

func headerOut(h backup.Header) headerJSON {
	out := headerJSON{FormatVersion: h.FormatVersion, ClusterID: h.ClusterID, NodeID: h.NodeID, Index: h.Index, Term: h.Term,
		ClusterTime: time.Duration(h.ClusterTime).String(), ClusterVersion: h.ClusterVersion, StateBytes: h.StateSize,
		StateSHA256: hex.EncodeToString(h.StateSHA256[:])}
	if !h.Created.IsZero() {
		out.Created = h.Created.UTC().Format(time.RFC3339Nano)
	}
	return out
}

func headerText(h headerJSON) string {
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "  %-16s %v\n", k+":", v) }
	if h.FormatVersion != 0 {
		row("format version", h.FormatVersion)
	}
	id := h.ClusterID
	if id == "" {
		id = "(unknown)"
	}
	row("cluster id", id)
	row("taken by", h.NodeID)
	row("created", h.Created)
	row("index", h.Index)
	row("term", h.Term)
	row("cluster time", h.ClusterTime)
	row("cluster version", h.ClusterVersion)
	row("state", fmt.Sprintf("%d bytes", h.StateBytes))
	if h.StateSHA256 != "" {
		row("state sha256", h.StateSHA256)
	}
	return b.String()
}

// snapshotSave streams a backup into FILE, atomically: a temporary file in
// the same directory, synced and renamed only when the whole state has
// arrived and its checksum matched.
func snapshotSave(ctx context.Context, e *env, file string) error {
	start := time.Now()
	s, err := e.cl.Snapshot(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	h := backup.Header{ClusterID: s.Header.ClusterID, NodeID: s.Header.NodeID, Index: s.Header.Index, Term: s.Header.Term,
		ClusterTime: int64(s.Header.ClusterTime), ClusterVersion: s.Header.ClusterVersion, Created: s.Header.Created,
		StateSize: s.Header.StateSize}
	h, err = backup.WriteFile(file, h, s)
	if err != nil {
		return fmt.Errorf("save %s: %w", file, err)
	}
	took := time.Since(start)
	out := headerOut(h)
	return e.print(struct {
		File    string     `json:"file"`
		Seconds float64    `json:"seconds"`
		Header  headerJSON `json:"header"`
	}{file, took.Seconds(), out},
		fmt.Sprintf("saved a backup to %s in %s:\n%s", file, took.Round(time.Millisecond), headerText(out)))
}

// snapshotInspect checks a backup file whole (checksums, versions, the
// state decoded) and prints its header and what it holds.
func snapshotInspect(e *env, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h, t, err := backup.Load(fsm.DefaultConfig(), f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	st := t.Stats()
	out := headerOut(h)
	return e.print(struct {
		File     string     `json:"file"`
		Header   headerJSON `json:"header"`
		Locks    int        `json:"locks"`
		Waiters  int        `json:"waiters"`
		Requests int        `json:"remembered_request_ids"`
	}{file, out, st.Locks, st.Waiters, st.Requests},
		fmt.Sprintf("%s: a raftlock backup, checksums match\n%s  %-16s %d\n  %-16s %d (dropped by a restore)\n  %-16s %d\n",
			file, headerText(out), "locks:", st.Locks, "waiters:", st.Waiters, "remembered ids:", st.Requests))
}

// snapshotRestore checks FILE here (so a damaged file fails before it is
// sent) and uploads it to the leader, which checks it again and restores.
func snapshotRestore(ctx context.Context, e *env, file string, o client.RestoreOptions) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if _, _, err := backup.Parse(b); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	start := time.Now()
	res, err := e.cl.Restore(ctx, b, o)
	if err != nil {
		return err
	}
	took := time.Since(start)
	shift := ""
	if res.TimeShift > 0 {
		shift = fmt.Sprintf(", deadlines moved %s with it (remaining times kept)", res.TimeShift)
	}
	return e.print(struct {
		File    string                `json:"file"`
		Seconds float64               `json:"seconds"`
		Result  *client.RestoreResult `json:"result"`
	}{file, took.Seconds(), res},
		fmt.Sprintf("restored %s (cluster %s, index %d) in %s: %d locks and %d remembered request ids; %d waiters dropped\n"+
			"the log stands at index %d: every new fencing token is above it; cluster time %s%s; cluster version %d\n",
			file, orUnknown(res.Header.ClusterID), res.Header.Index, took.Round(time.Millisecond), res.Locks, res.Requests,
			res.DroppedWaiters, res.Index, res.ClusterTime, shift, res.ClusterVersion))
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
