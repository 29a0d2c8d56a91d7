package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/tokens"
	"github.com/raftlock/raftlock/fence"
	"github.com/raftlock/raftlock/fsm"
	"github.com/raftlock/raftlock/fsm/backup"
	"github.com/raftlock/raftlock/internal/testcluster"
)

// TestMain removes the node binary the real-process tests built.
func TestMain(m *testing.M) { os.Exit(testcluster.Main(m)) }

// saved is what a backup file says one key holds.
type saved struct {
	info      fsm.LockInfo
	remaining time.Duration // of an exclusive lock that expires; 0: never
}

// The disaster (issue 19): a backup saved from a 3-node cluster of real
// processes under load, all three nodes killed and their data deleted, a
// new cluster restored from the file. Every lock comes back with its
// owner, token and remaining time (exclusive, shared and semaphore keys);
// the waiter of the backup is dropped and the log says so; cluster time
// does not go back; a fenced resource that saw tokens before the disaster,
// also ones granted after the save, accepts the new cluster's grants and
// refuses a stale holder; a damaged file (one flipped byte, a cut tail) is
// refused by lockctl and by the node; a second restore into the restored
// cluster is refused unless forced. With either log store (raft-wal drops
// the log below a restore, raft-boltdb keeps it behind a gap).
func TestBackupRestoreAfterLosingEveryNode(t *testing.T) {
	bin := buildLockctl(t)
	for _, store := range []string{"wal", "bolt"} {
		t.Run(store, func(t *testing.T) { testBackupRestore(t, bin, store) })
	}
}

func testBackupRestore(t *testing.T, bin, store string) {
	c := testcluster.New(t, 3, testcluster.WithArgs("--log-store", store))
	c.Leader()
	eps := strings.Join(c.Addrs(), ",")
	ctl := func(args ...string) result {
		return lockctl(t, bin, nil, append([]string{"--endpoints", eps, "--json"}, args...)...)
	}
	cl := testClient(t, c.Addrs())
	ctx := t.Context()
	c.WaitFor("cluster version 2 (modes)", func() bool {
		st, err := c.Status(ctx, c.Leader())
		return err == nil && st.ClusterVersion == 2
	})

	// What the backup must carry: exclusive locks that expire and that do
	// not, a shared key with two readers, a semaphore, and a waiter.
	for i := range 50 {
		expire := 10 * time.Minute
		if i%10 == 0 {
			expire = 0
		}
		if _, err := cl.Acquire(ctx, []string{fmt.Sprintf("keep/%02d", i)}, client.WithOwner(fmt.Sprintf("owner-%d", i%7)), client.WithExpire(expire)); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []string{"reader-1", "reader-2"} {
		if _, err := cl.Acquire(ctx, []string{"report"}, client.WithOwner(o), client.WithShared(), client.WithExpire(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Acquire(ctx, []string{"pool"}, client.WithOwner("batch"), client.WithSemaphore(5, 2), client.WithExpire(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	waitCtx, stopWaiting := context.WithCancel(ctx)
	waiterDone := make(chan struct{})
	go func() { // a raw call, so no client retries it against the new cluster
		defer close(waiterDone)
		lc := raftlockv1connect.NewLockServiceClient(&http.Client{}, c.URL(0)) // no timeout: it waits
		_, _ = lc.Acquire(waitCtx, connect.NewRequest(&raftlockv1.AcquireRequest{Keys: []string{"keep/01"}, OwnerId: "patient",
			RequestId: "the-waiter", WaitTimeout: durationpb.New(time.Hour), Expire: durationpb.New(time.Minute)}))
	}()
	c.WaitFor("the waiter to queue", func() bool {
		st, err := c.Status(ctx, c.Leader())
		return err == nil && st.Waiters == 1
	})

	// Load, and a fenced resource that sees every token granted.
	var guard fence.Guard
	var highest atomic.Uint64
	grant := func(key string) uint64 {
		l, err := cl.Acquire(ctx, []string{key}, client.WithOwner("loader"), client.WithExpire(time.Minute))
		if err != nil {
			t.Error(err)
			return 0
		}
		if err := guard.Check(key, l.Token()); err != nil {
			t.Errorf("the resource refused a current holder: %v", err)
		}
		for {
			h := highest.Load()
			if l.Token() <= h || highest.CompareAndSwap(h, l.Token()) {
				break
			}
		}
		if _, err := cl.Release(ctx, []string{key}, "loader"); err != nil {
			t.Error(err)
		}
		return l.Token()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				grant(fmt.Sprintf("load/%d", (w*7+i)%10))
			}
		}()
	}

	// Save under load.
	file := filepath.Join(t.TempDir(), "backup.rlb")
	r := ctl("snapshot", "save", file)
	if r.code != 0 {
		t.Fatalf("snapshot save: %d %s", r.code, r.stderr)
	}
	var saveOut struct{ Header headerJSON }
	if err := json.Unmarshal([]byte(r.stdout), &saveOut); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	h, tab, err := backup.Load(fsm.DefaultConfig(), f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if h.Index != saveOut.Header.Index || h.ClusterID == "" || h.ClusterVersion != 2 {
		t.Fatalf("file header %+v, lockctl said %+v", h, saveOut.Header)
	}
	want := map[string]saved{}
	locks, _ := tab.List(fsm.ListOptions{})
	for _, li := range locks {
		s := saved{info: li}
		if li.Deadline != 0 {
			s.remaining = time.Duration(li.Deadline - tab.Now())
		}
		want[li.Key] = s
	}
	if st := tab.Stats(); st.Waiters != 1 || len(want) < 52 || want["report"].info.Mode != fsm.ModeShared || want["pool"].info.Mode != fsm.ModeSemaphore {
		t.Fatalf("the backup holds %+v and %d keys (report %+v, pool %+v)", st, len(want), want["report"].info, want["pool"].info)
	}
	// The resource goes on seeing grants after the save, above the file's
	// index: tokens a restore must not hand out again.
	for range 5 {
		grant("load/3")
	}
	if highest.Load() <= h.Index {
		t.Fatalf("no grant after the save: highest token %d, file index %d", highest.Load(), h.Index)
	}
	close(stop)
	wg.Wait()
	stopWaiting()
	<-waiterDone
	staleToken := highest.Load()

	// The disaster: every node killed, every disk wiped.
	for i := range c.Len() {
		if err := c.Kill(i); err != nil {
			t.Fatal(err)
		}
		if err := c.Wipe(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.Len() {
		if err := c.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	c.Leader()
	if st, err := c.Status(ctx, c.Leader()); err != nil || st.Locks != 0 {
		t.Fatalf("the new cluster is not empty: %+v, %v", st, err)
	}

	// Damaged files are refused, by lockctl before they are sent and by
	// the leader when sent anyway, and change nothing.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(b)
	flipped[len(flipped)/2] ^= 0x01
	cut := b[:len(b)-7]
	for name, bad := range map[string][]byte{"flipped": flipped, "cut": cut} {
		path := filepath.Join(t.TempDir(), name+".rlb")
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		wantText := map[string]string{"flipped": "checksum mismatch", "cut": "truncated"}[name]
		for _, sub := range []string{"inspect", "restore"} {
			if r := ctl("snapshot", sub, path); r.code != exitError || !strings.Contains(r.stderr, wantText) {
				t.Fatalf("snapshot %s of the %s file: exit %d, stderr %q", sub, name, r.code, r.stderr)
			}
		}
		_, err := cl.Restore(ctx, bad, client.RestoreOptions{})
		if !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), wantText) {
			t.Fatalf("the leader took the %s file: %v", name, err)
		}
	}
	if st, _ := c.Status(ctx, c.Leader()); st.Locks != 0 {
		t.Fatalf("a refused restore left %d locks", st.Locks)
	}

	// The restore.
	began := time.Now()
	r = ctl("snapshot", "restore", file)
	if r.code != 0 {
		t.Fatalf("snapshot restore: %d %s", r.code, r.stderr)
	}
	var restoreOut struct{ Result client.RestoreResult }
	if err := json.Unmarshal([]byte(r.stdout), &restoreOut); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	res := restoreOut.Result
	if res.DroppedWaiters != 1 || res.Locks != uint64(tab.Stats().Locks) || res.Index <= staleToken || res.Index%(1<<48) != 0 {
		t.Fatalf("restore result %+v (stale token %d)", res, staleToken)
	}
	if res.ClusterTime < time.Duration(h.ClusterTime) {
		t.Fatalf("cluster time went back: %s in the backup, %s after the restore", time.Duration(h.ClusterTime), res.ClusterTime)
	}
	// Every lock, as the backup has it.
	got, err := cl.List(ctx, client.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(began) + time.Second
	if len(got) != len(want) {
		t.Fatalf("%d keys after the restore, %d in the backup", len(got), len(want))
	}
	for _, li := range got {
		w, ok := want[li.Key]
		switch {
		case !ok:
			t.Fatalf("%s is held after the restore, not in the backup", li.Key)
		case li.Owner != w.info.Owner || li.Token != w.info.Token || len(li.Holders) != len(w.info.Holders) || li.Waiters != 0:
			t.Fatalf("%s: %+v after the restore, %+v in the backup", li.Key, li, w.info)
		case w.info.Deadline == 0 && li.Expires:
			t.Fatalf("%s never expired in the backup, expires in %s now", li.Key, li.ExpiresIn)
		case w.remaining > 0 && (li.ExpiresIn > w.remaining || li.ExpiresIn < w.remaining-elapsed):
			t.Fatalf("%s: %s left after the restore, %s in the backup (restored %s ago)", li.Key, li.ExpiresIn, w.remaining, elapsed)
		}
		for i, ho := range li.Holders {
			if wh := w.info.Holders[i]; ho.Owner != wh.Owner || ho.Token != wh.Token || len(ho.Slots) != len(wh.Slots) {
				t.Fatalf("%s holder %d: %+v, in the backup %+v", li.Key, i, ho, wh)
			}
		}
	}
	// The waiter is gone, and the log says so.
	if st, _ := c.Status(ctx, c.Leader()); st.Waiters != 0 {
		t.Fatalf("%d waiters after the restore", st.Waiters)
	}
	if l := c.Log(c.Leader(), 1<<20); !strings.Contains(l, "waiting acquire dropped") || !strings.Contains(l, "the-waiter") {
		t.Fatalf("the leader's log does not name the dropped waiter:\n%s", l)
	}
	// New grants are above every token the resource saw: it accepts them
	// and refuses a holder from before the disaster.
	l, err := cl.Acquire(ctx, []string{"load/3"}, client.WithOwner("after"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Token() <= staleToken {
		t.Fatalf("new token %d is not above %d, seen before the disaster", l.Token(), staleToken)
	}
	if err := guard.Check("load/3", l.Token()); err != nil {
		t.Fatalf("the resource refused the new cluster's holder: %v", err)
	}
	if err := guard.Check("load/3", staleToken); !errors.Is(err, fence.ErrFenced) {
		t.Fatalf("the resource accepted a stale holder's token: %v", err)
	}
	c.EnsureSame()

	// The restored cluster has data: a restore is refused, unless forced,
	// and a forced one starts another epoch.
	if r := ctl("snapshot", "restore", file); r.code != exitError || !strings.Contains(r.stderr, "holds data") {
		t.Fatalf("a second restore: exit %d, stderr %q", r.code, r.stderr)
	}
	follower := c.Followers()[0] // sent there, the upload follows the node's answer to the leader
	r = lockctl(t, bin, nil, "--endpoints", c.Addr(follower), "--json", "snapshot", "restore", "--force", file)
	if r.code != 0 {
		t.Fatalf("forced restore through %s: %d %s", c.ID(follower), r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &restoreOut); err != nil || restoreOut.Result.Index != 2<<48 {
		t.Fatalf("forced restore result %+v, %v", restoreOut.Result, err)
	}
	if l, err := cl.Acquire(ctx, []string{"load/3"}, client.WithOwner("after")); err != nil || l.Token() <= 2<<48 {
		t.Fatalf("after the forced restore: %v, %v", l, err)
	}
}

// Saving and restoring a backup needs the admin verb: streams are checked
// by their handlers (the unary auth interceptor does not see them). A
// token that may acquire and read is refused both, by name; an admin token
// may do both.
func TestBackupNeedsTheAdminVerb(t *testing.T) {
	bin := buildLockctl(t)
	app, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	ops, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.New(t, 1, testcluster.WithTokens(
		tokens.Token{Name: "app", SHA256: tokens.Hash(app), Verbs: []string{tokens.VerbAcquire, tokens.VerbRead}},
		tokens.Token{Name: "ops", SHA256: tokens.Hash(ops), Verbs: []string{tokens.VerbAdmin}}))
	c.Leader()
	as := func(secret string, args ...string) result {
		return lockctl(t, bin, nil, append([]string{"--endpoints", c.Addr(0), "--tls-ca", filepath.Join(c.TLSDir(), "ca.crt"), "--token", secret}, args...)...)
	}
	file := filepath.Join(t.TempDir(), "b.rlb")
	if r := as(app, "snapshot", "save", file); r.code != exitError || !strings.Contains(r.stderr, `token "app" may not admin`) {
		t.Fatalf("save with the app token: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused save left a file: %v", err)
	}
	if r := as(ops, "snapshot", "save", file); r.code != 0 {
		t.Fatalf("save with the admin token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := as(app, "snapshot", "restore", "--force", file); r.code != exitError || !strings.Contains(r.stderr, `token "app" may not admin`) {
		t.Fatalf("restore with the app token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := as(ops, "snapshot", "restore", "--force", file); r.code != 0 {
		t.Fatalf("restore with the admin token: exit %d, stderr %q", r.code, r.stderr)
	}
}
