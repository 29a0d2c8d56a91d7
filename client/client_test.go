package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// decrementStock is the job of the stock tests: it sells one item if any
// is left. It checks, then pauses until every buyer has checked (or 50 ms
// passed), then sells: without mutual exclusion every buyer sees stock
// and the stock goes negative; with it, at most one buyer is inside.
func decrementStock(stock, checked, inside, maxInside *atomic.Int64, buyers int64) {
	n := inside.Add(1)
	defer inside.Add(-1)
	for {
		m := maxInside.Load()
		if n <= m || maxInside.CompareAndSwap(m, n) {
			break
		}
	}
	if stock.Load() <= 0 {
		checked.Add(1)
		return
	}
	checked.Add(1)
	for deadline := time.Now().Add(50 * time.Millisecond); checked.Load() < buyers && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	stock.Add(-1)
}

// Ten concurrent Executes that each sell one item of a stock of five sell
// exactly five: the stock ends at 0, never below, and fn never runs twice
// at once (DESIGN.md section 2, Execute).
func TestExecuteStockNeverOversold(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())
	var stock, checked, inside, maxInside atomic.Int64
	stock.Store(5)
	const buyers = 10
	var wg sync.WaitGroup
	errs := make(chan error, buyers)
	for range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- cl.Execute(ctx, []string{"prod_123"}, func(ctx context.Context) error {
				decrementStock(&stock, &checked, &inside, &maxInside, buyers)
				return nil
			}, client.WithWait(30*time.Second))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("execute: %v", err)
		}
	}
	if got := stock.Load(); got != 0 {
		t.Errorf("stock = %d, want 0", got)
	}
	if got := maxInside.Load(); got != 1 {
		t.Errorf("at most %d buyers were inside at once, want 1", got)
	}
	mustFree(t, ctx, cl, "prod_123")
}

// The same job without a lock oversells: the stock test above can fail.
func TestStockWithoutLockOversells(t *testing.T) {
	var stock, checked, inside, maxInside atomic.Int64
	stock.Store(5)
	const buyers = 10
	var wg sync.WaitGroup
	for range buyers {
		wg.Add(1)
		go func() { defer wg.Done(); decrementStock(&stock, &checked, &inside, &maxInside, buyers) }()
	}
	wg.Wait()
	if got := stock.Load(); got >= 0 {
		t.Fatalf("stock = %d without a lock; the stock test cannot tell a lock from none", got)
	}
}

// fn's error is returned unchanged, the lock is released, and the next
// Execute on the key runs.
func TestExecuteErrorReleases(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())
	boom := errors.New("payment declined")
	err := cl.Execute(ctx, []string{"order-1"}, func(ctx context.Context) error { return boom })
	if !errors.Is(err, boom) || err != boom {
		t.Fatalf("execute = %v, want fn's error unchanged", err)
	}
	mustFree(t, ctx, cl, "order-1")
	ran := false
	if err := cl.Execute(ctx, []string{"order-1"}, func(ctx context.Context) error { ran = true; return nil }, client.WithWait(0)); err != nil || !ran {
		t.Fatalf("next execute: ran=%v err=%v", ran, err)
	}
}

// A panic in fn releases the lock and then goes on.
func TestExecutePanicReleases(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Fatalf("recovered %v, want the panic of fn", r)
			}
		}()
		_ = cl.Execute(ctx, []string{"p"}, func(ctx context.Context) error { panic("kaboom") })
		t.Fatal("execute returned instead of panicking")
	}()
	mustFree(t, ctx, cl, "p")
}

// When the caller's context ends while fn runs, fn's context ends with it
// and the lock is released all the same.
func TestExecuteCallerCancelReleases(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())
	cctx, cancel := context.WithCancel(ctx)
	err := cl.Execute(cctx, []string{"c"}, func(fctx context.Context) error {
		cancel()
		<-fctx.Done()
		return fctx.Err()
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrLockLost) {
		t.Fatalf("execute = %v, want context.Canceled (not a lost lock)", err)
	}
	mustFree(t, ctx, cl, "c")
}

// Three Executes on one key: the first holds it about 1 s, the second
// waits 1 s and fails with the timeout error without running, the third
// waits 2 s and runs. The first holds the key until the second has given
// up (instead of sleeping a guessed second), so the outcome does not
// depend on scheduling.
func TestExecuteTimeouts(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())
	started, secondDone := make(chan struct{}), make(chan struct{})
	var ran [3]atomic.Bool
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[0] = cl.Execute(ctx, []string{"job"}, func(ctx context.Context) error {
			ran[0].Store(true)
			close(started)
			select {
			case <-secondDone:
			case <-time.After(20 * time.Second):
			}
			return nil
		})
	}()
	<-started
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(secondDone)
		errs[1] = cl.Execute(ctx, []string{"job"}, func(ctx context.Context) error { ran[1].Store(true); return nil }, client.WithWait(time.Second))
	}()
	waitFor(t, 10*time.Second, "the second Execute to wait", func() bool {
		li, err := cl.Get(ctx, "job")
		return err == nil && li != nil && li.Waiters == 1
	})
	go func() {
		defer wg.Done()
		errs[2] = cl.Execute(ctx, []string{"job"}, func(ctx context.Context) error { ran[2].Store(true); return nil }, client.WithWait(2*time.Second))
	}()
	wg.Wait()
	if errs[0] != nil || !ran[0].Load() {
		t.Errorf("first: ran=%v err=%v", ran[0].Load(), errs[0])
	}
	if !errors.Is(errs[1], client.ErrWaitTimeout) || errs[1].Error() != "Timed-out acquiring lock." || ran[1].Load() {
		t.Errorf("second: ran=%v err=%v, want ErrWaitTimeout without running", ran[1].Load(), errs[1])
	}
	if errs[2] != nil || !ran[2].Load() {
		t.Errorf("third: ran=%v err=%v", ran[2].Load(), errs[2])
	}
	mustFree(t, ctx, cl, "job")
}

// The owner rules through the client: a release by another owner frees
// nothing, the same non-empty owner re-enters (same token), anonymous
// locks never re-enter, and ReleaseAll frees one owner's locks only.
func TestOwnerRules(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())

	a1, err := cl.Acquire(ctx, []string{"k"}, client.WithOwner("alice"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := cl.Acquire(ctx, []string{"k"}, client.WithOwner("alice"))
	if err != nil {
		t.Fatalf("re-entrant acquire: %v", err)
	}
	if a2.Token() != a1.Token() {
		t.Fatalf("re-entrant token %d, want %d", a2.Token(), a1.Token())
	}
	_, err = cl.Acquire(ctx, []string{"k"}, client.WithOwner("bob"))
	if !errors.Is(err, client.ErrLockHeld) || err.Error() != `Failed to acquire lock for key "k"` {
		t.Fatalf("bob's acquire = %v, want ErrLockHeld with the server's message", err)
	}
	if ok, err := cl.Release(ctx, []string{"k"}, "bob"); err != nil || ok {
		t.Fatalf("bob's release = %v, %v; want false", ok, err)
	}
	if li, err := cl.Get(ctx, "k"); err != nil || li == nil || li.Owner != "alice" || li.Token != a1.Token() {
		t.Fatalf("after bob's release: %+v, %v", li, err)
	}
	if ok, err := cl.Release(ctx, []string{"k"}, "alice"); err != nil || !ok {
		t.Fatalf("alice's release = %v, %v; want true", ok, err)
	}
	mustFree(t, ctx, cl, "k")

	// Anonymous: never re-entrant; released by the empty owner.
	if _, err := cl.Acquire(ctx, []string{"anon"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Acquire(ctx, []string{"anon"}); !errors.Is(err, client.ErrLockHeld) {
		t.Fatalf("second anonymous acquire = %v, want ErrLockHeld", err)
	}
	if ok, err := cl.Release(ctx, []string{"anon"}, "alice"); err != nil || ok {
		t.Fatalf("alice releasing an anonymous lock = %v, %v; want false", ok, err)
	}

	// ReleaseAll frees exactly one owner's locks.
	if _, err := cl.Acquire(ctx, []string{"x", "y"}, client.WithOwner("carol")); err != nil {
		t.Fatal(err)
	}
	if n, err := cl.ReleaseAll(ctx, "carol"); err != nil || n != 2 {
		t.Fatalf("release all carol = %d, %v; want 2", n, err)
	}
	if li, _ := cl.Get(ctx, "anon"); li == nil {
		t.Fatal("carol's ReleaseAll freed an anonymous lock")
	}
	if n, err := cl.ReleaseAll(ctx, ""); err != nil || n != 1 {
		t.Fatalf("release all anonymous = %d, %v; want 1", n, err)
	}
	if locks, err := cl.List(ctx, client.ListFilter{}); err != nil || len(locks) != 0 {
		t.Fatalf("list = %+v, %v; want none", locks, err)
	}
}

// Fencing: a lock taken over (here by an administrative ForceRelease and
// a new grant) has a lower token than the new holder's; its Release
// frees nothing, and its Refresh reports it lost and closes Done.
func TestStaleLockCannotReleaseNewHolder(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())
	old, err := cl.Acquire(ctx, []string{"res"}, client.WithOwner("w"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := cl.ForceRelease(ctx, []string{"res"}); err != nil || n != 1 {
		t.Fatalf("force release = %d, %v", n, err)
	}
	cur, err := cl.Acquire(ctx, []string{"res"}, client.WithOwner("w"))
	if err != nil {
		t.Fatal(err)
	}
	if cur.Token() <= old.Token() {
		t.Fatalf("new token %d is not above the old %d", cur.Token(), old.Token())
	}
	if err := old.Refresh(ctx); !errors.Is(err, client.ErrLockLost) || !errors.Is(err, client.ErrNotHeld) {
		t.Fatalf("stale refresh = %v, want ErrLockLost and ErrNotHeld", err)
	}
	select {
	case <-old.Done():
	default:
		t.Fatal("Done is open after a refresh found the lock gone")
	}
	if err := old.Release(ctx); !errors.Is(err, client.ErrNotHeld) {
		t.Fatalf("stale release = %v, want ErrNotHeld", err)
	}
	if li, err := cl.Get(ctx, "res"); err != nil || li == nil || li.Token != cur.Token() {
		t.Fatalf("the stale release touched the new holder: %+v, %v", li, err)
	}
	if err := cur.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(cur.Err(), client.ErrReleased) {
		t.Fatalf("Err after Release = %v", cur.Err())
	}
	mustFree(t, ctx, cl, "res")
}

// Every protocol works: gRPC (default), Connect JSON over HTTP/1.1,
// Connect binary over h2c.
func TestProtocols(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	for _, p := range []client.Protocol{client.ProtocolGRPC, client.ProtocolConnectJSON, client.ProtocolConnectProto} {
		cl := newClient(t, c.Addrs(), client.WithProtocol(p))
		key := "proto-" + p.String()
		l, err := cl.Acquire(ctx, []string{key}, client.WithOwner("o"), client.WithExpire(time.Minute))
		if err != nil {
			t.Fatalf("%s: acquire: %v", p, err)
		}
		if _, err := cl.Acquire(ctx, []string{key}); !errors.Is(err, client.ErrLockHeld) {
			t.Fatalf("%s: busy acquire = %v", p, err)
		}
		li, err := cl.Get(ctx, key)
		if err != nil || li == nil || li.Token != l.Token() || !li.Expires {
			t.Fatalf("%s: get = %+v, %v", p, li, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("%s: release: %v", p, err)
		}
		if cl.Leader() != c.Addr(0) {
			t.Fatalf("%s: leader = %q, want %q", p, cl.Leader(), c.Addr(0))
		}
	}
}

// Multi-key acquires are all or nothing, and a lock's deadline is in the
// future and at most its time to live after the send.
func TestMultiKeyAndDeadline(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())
	if _, err := cl.Acquire(ctx, []string{"b"}, client.WithOwner("x")); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	_, err := cl.Acquire(ctx, []string{"c", "a", "b"}, client.WithOwner("y"))
	if !errors.Is(err, client.ErrLockHeld) {
		t.Fatalf("acquire over a busy key = %v", err)
	}
	mustFree(t, ctx, cl, "a")
	l, err := cl.Acquire(ctx, []string{"c", "a", "a"}, client.WithOwner("y"), client.WithExpire(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(l.Keys()); got != "[a c]" {
		t.Fatalf("keys = %s", got)
	}
	d := l.Deadline()
	if !d.After(time.Now()) || d.After(before.Add(30*time.Second)) {
		t.Fatalf("deadline %v is not within (now, send+30s]", d)
	}
	if tk := l.Tokens(); tk["a"] != l.Token() || tk["c"] != l.Token() {
		t.Fatalf("tokens = %v, token = %d", tk, l.Token())
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A grant that arrives after the deadline counted from the send (a long
// wait with a short time to live) is refreshed before Acquire returns, so
// the caller never gets a lock whose deadline already passed.
func TestLateGrantIsRefreshed(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())
	holder, err := cl.Acquire(ctx, []string{"k"}, client.WithOwner("holder"), client.WithExpire(0))
	if err != nil {
		t.Fatal(err)
	}
	const expire = 1500 * time.Millisecond // deadline = send + 1 s
	sent := time.Now()
	got := make(chan *client.Lock, 1)
	go func() {
		l, err := cl.Acquire(ctx, []string{"k"}, client.WithOwner("late"), client.WithExpire(expire), client.WithWait(20*time.Second))
		if err != nil {
			t.Errorf("late acquire: %v", err)
		}
		got <- l
	}()
	waitFor(t, 10*time.Second, "the acquire to wait past its first deadline", func() bool {
		li, err := cl.Get(ctx, "k")
		return err == nil && li != nil && li.Waiters == 1 && time.Since(sent) > expire
	})
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l == nil {
		t.FailNow()
	}
	if err := l.Err(); err != nil {
		t.Fatalf("the late grant is already lost: %v", err)
	}
	if !l.Deadline().After(sent.Add(expire)) {
		t.Fatalf("deadline %v was not moved past the first send's", l.Deadline())
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
