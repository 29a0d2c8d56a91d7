package main

// Restores and versions (issue 19): a backup's cluster version must be one
// every voter can apply, and a restore never lowers the version.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/fsm"
	"github.com/raftlock/raftlock/fsm/backup"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// backupOf writes a backup file of a table holding one lock ("restored",
// owner "keeper") at cluster version v, as a cluster at that version saves
// it, and returns the file's bytes.
func backupOf(t *testing.T, v uint32) []byte {
	t.Helper()
	tab := fsm.New(fsm.DefaultConfig())
	now := int64(time.Hour)
	if v >= fsm.Version2 {
		tab.Apply(1, &fsm.Command{Op: fsm.OpSetVersion, Time: now, ClusterVersion: v})
	}
	tab.Apply(2, &fsm.Command{Op: fsm.OpAcquire, Time: now, Keys: []string{"restored"}, Owner: "keeper"})
	state := tab.AppendSnapshot(nil)
	path := filepath.Join(t.TempDir(), fmt.Sprintf("v%d.rlb", v))
	h := backup.Header{ClusterID: "elsewhere", NodeID: "n9", Index: 2, Term: 1, ClusterTime: now, ClusterVersion: tab.Version(), StateSize: uint64(len(state))}
	if _, err := backup.WriteFile(path, h, bytes.NewReader(state)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A cluster with a member of the previous release (which applies version
// 1 only): a version 2 backup is refused, naming the member behind, and
// changes nothing; a version 1 backup is restored, stays at version 1
// (so the old member installs it), and every member, the old one too,
// serves its lock afterwards.
func TestRestoreKeepsToTheVersionEveryVoterCanApply(t *testing.T) {
	old := buildAt(t, previousRelease)
	pc := newPCluster(t, "", false, testcluster.WithNode(2, testcluster.NodeOptions{Binary: old}))
	ctx := t.Context()
	// The restore goes to the leader, which must run this build.
	if l := pc.waitLeader(); l == 2 {
		pc.post(l, "raftlock.v1.ClusterService/TransferLeadership", `{"id":"n1"}`)
	}
	testcluster.WaitFor(t, 30*time.Second, "a leader of this build that knows every member's version", func() bool {
		l, err := pc.c.FindLeader(ctx)
		if err != nil || l == 2 {
			return false
		}
		st, err := pc.c.Status(ctx, l)
		if err != nil {
			return false
		}
		for _, m := range st.Members {
			if m.SupportedVersion == 0 {
				return false
			}
		}
		return true
	})
	cl, err := client.New(pc.c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	_, err = cl.Restore(ctx, backupOf(t, fsm.Version2), client.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "cluster version 2") || !strings.Contains(err.Error(), "n3 (supports 1)") {
		t.Fatalf("a version 2 backup with a version 1 member: %v", err)
	}
	if r := pc.post(0, "raftlock.v1.ClusterService/Status", "{}"); r.body["locks"] != nil && r.body["locks"] != "0" {
		t.Fatalf("a refused restore changed the table: %s", r.raw)
	}

	res, err := cl.Restore(ctx, backupOf(t, fsm.Version1), client.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.ClusterVersion != 1 || res.Locks != 1 || res.Index != 1<<48 {
		t.Fatalf("restore result %+v", res)
	}
	for i := range 3 {
		testcluster.WaitFor(t, 30*time.Second, fmt.Sprintf("%s to hold the restored lock", pc.c.ID(i)), func() bool {
			r := pc.tryPost(i, "raftlock.v1.LockService/GetLock", `{"key":"restored"}`)
			l, _ := r.body["lock"].(map[string]any)
			return r.err == nil && l != nil && l["ownerId"] == "keeper"
		})
		if !pc.c.Running(i) {
			t.Fatalf("%s stopped after the restore:\n%s", pc.c.ID(i), pc.c.Log(i, 4096))
		}
	}
	if l, err := cl.Acquire(ctx, []string{"after"}, client.WithOwner("o")); err != nil || l.Token() <= 1<<48 {
		t.Fatalf("a grant after the restore: %v, %v", l, err)
	}
	pc.c.EnsureSame() // the old member's table too: the same snapshot encoding
}
