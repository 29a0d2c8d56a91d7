package client_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// indexOf returns the index of the node at addr.
func indexOf(t *testing.T, c *clustertest.Cluster, addr string) int {
	t.Helper()
	i := slices.Index(c.Addrs(), addr)
	if i < 0 {
		t.Fatalf("no node at %s", addr)
	}
	return i
}

// warmUp makes cl learn the leader and checks it learned the right one.
func warmUp(t *testing.T, ctx context.Context, c *clustertest.Cluster, cl *client.Client) int {
	t.Helper()
	leader := c.Leader()
	c.WaitFor("the client to learn the leader", func() bool {
		_, err := cl.Get(ctx, "warm-up")
		return err == nil && cl.Leader() == c.Addr(leader)
	})
	return leader
}

// Killing the leader while an Acquire waits in its queue: the waiter
// lives in the replicated table, the client re-attaches to it on the new
// leader with the same request id, and is granted exactly once when the
// holder releases. Nothing is left behind.
func TestKillLeaderWhileAcquireWaits(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := testCtx(t)
	holder := newClient(t, c.Addrs())
	waiter := newClient(t, c.Addrs())
	leader := warmUp(t, ctx, c, waiter)

	held, err := holder.Acquire(ctx, []string{"k"}, client.WithOwner("holder"), client.WithExpire(0))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *client.Lock
		err error
	}
	got := make(chan result, 1)
	go func() {
		l, err := waiter.Acquire(ctx, []string{"k"}, client.WithOwner("waiter"), client.WithWait(60*time.Second))
		got <- result{l, err}
	}()
	c.WaitFor("the acquire to wait", func() bool {
		li, err := holder.Get(ctx, "k")
		return err == nil && li != nil && li.Waiters == 1
	})
	c.Kill(leader)
	c.WaitFor("a new leader", func() bool { return c.LeaderIndex() >= 0 })
	select {
	case r := <-got:
		t.Fatalf("the waiting acquire returned before the holder released: %v, %v", r.l, r.err)
	default:
	}
	if err := held.Release(ctx); err != nil {
		t.Fatalf("holder release after failover: %v", err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("waiting acquire after failover: %v", r.err)
	}
	if r.l.Token() <= held.Token() {
		t.Fatalf("token %d is not above the previous holder's %d", r.l.Token(), held.Token())
	}
	li, err := holder.Get(ctx, "k")
	if err != nil || li == nil || li.Owner != "waiter" || li.Token != r.l.Token() || li.Waiters != 0 {
		t.Fatalf("after the grant: %+v, %v", li, err)
	}
	if err := r.l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if locks, err := holder.List(ctx, client.ListFilter{}); err != nil || len(locks) != 0 {
		t.Fatalf("left behind: %+v, %v", locks, err)
	}
}

// Killing the leader while Execute's fn runs: the renewal goes on through
// the new leader, nobody else gets the key while fn's lock is guaranteed,
// and the key is free once Execute returns. If the failover took longer
// than the conservative deadline, Execute must say the lock was lost
// (and fn's context must have ended) instead.
func TestKillLeaderWhileExecuteRuns(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := testCtx(t)
	cl := newClient(t, c.Addrs())
	rival := newClient(t, c.Addrs())
	leader := warmUp(t, ctx, c, cl)
	const expire = 6 * time.Second

	started, finish := make(chan *client.Lock), make(chan struct{})
	var fnCtxEnded atomic.Bool
	execErr := make(chan error, 1)
	go func() {
		execErr <- cl.Execute(ctx, []string{"job"}, func(fctx context.Context) error {
			l, _ := client.LockFromContext(fctx)
			started <- l
			select {
			case <-finish:
			case <-fctx.Done():
				fnCtxEnded.Store(true)
			}
			return nil
		}, client.WithExpire(expire))
	}()
	l := <-started

	// A rival keeps trying to take the key; it must never succeed while
	// the lock is guaranteed.
	stopRival := make(chan struct{})
	var rivalWg sync.WaitGroup
	var violation atomic.Value
	rivalWg.Add(1)
	go func() {
		defer rivalWg.Done()
		for {
			select {
			case <-stopRival:
				return
			default:
			}
			rl, err := rival.Acquire(ctx, []string{"job"}, client.WithOwner("rival"))
			if err == nil {
				select {
				case <-l.Done():
				default:
					violation.Store("the rival took the key while the lock was guaranteed")
				}
				_ = rl.Release(ctx)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	killed := time.Now()
	c.Kill(leader)
	c.WaitFor("a refresh after the failover, or the lock lost", func() bool {
		select {
		case <-l.Done():
			return true
		default:
		}
		// Only a refresh sent after the kill puts the deadline past this
		// (deadline = send + expire - margin, margin = 1 s + 0.1%).
		return l.Deadline().After(killed.Add(expire - client.DefaultSafetyMargin - expire/1000))
	})
	close(finish)
	err := <-execErr
	close(stopRival)
	rivalWg.Wait()
	if v := violation.Load(); v != nil {
		t.Fatal(v)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("Done is open after Execute returned")
	}
	if errors.Is(l.Err(), client.ErrLockLost) {
		t.Logf("the failover outlasted the deadline: %v", l.Err())
		if !errors.Is(err, client.ErrLockLost) || !fnCtxEnded.Load() {
			t.Fatalf("lock lost but Execute = %v, fn context ended = %v", err, fnCtxEnded.Load())
		}
	} else if err != nil {
		t.Fatalf("execute across a failover: %v", err)
	}
	c.WaitFor("the key to be free", func() bool {
		li, err := rival.Get(ctx, "job")
		return err == nil && li == nil
	})
}

// grpcMessage decodes the first message of a gRPC response body.
func grpcMessage(t *testing.T, body []byte, m proto.Message) {
	t.Helper()
	if len(body) < 5 {
		t.Fatalf("short gRPC body: %d bytes", len(body))
	}
	n := binary.BigEndian.Uint32(body[1:5])
	msg := body[5 : 5+n]
	if body[0]&1 != 0 { // compressed
		zr, err := gzip.NewReader(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if msg, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	if err := proto.Unmarshal(msg, m); err != nil {
		t.Fatal(err)
	}
}

// The leader dies after granting an Acquire and before its reply reaches
// the client. The client retries with the same request id on the new
// leader and gets the first grant back (same token): acquired once, not
// twice, and nothing else held.
func TestKillLeaderBeforeAcquireReply(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := testCtx(t)
	rec := newRecorder()
	cl := newClient(t, c.Addrs(), client.WithHTTPClient(&http.Client{Transport: rec}))
	leader := warmUp(t, ctx, c, cl)

	var lost raftlockv1.AcquireResponse
	var dropped atomic.Bool
	rec.setHook(func(req *http.Request, base http.RoundTripper) (*http.Response, error) {
		if !dropped.CompareAndSwap(false, true) {
			return base.RoundTrip(req)
		}
		resp, err := base.RoundTrip(req)
		if err != nil {
			t.Errorf("the first acquire failed on its own: %v", err)
			return nil, err
		}
		grpcMessage(t, readAll(resp), &lost)
		c.Kill(indexOf(t, c, req.URL.Host))
		return nil, errors.New("test: the reply was lost with the leader")
	})
	l, err := cl.Acquire(ctx, []string{"k"}, client.WithOwner("o"), client.WithExpire(0))
	if err != nil {
		t.Fatalf("acquire across the lost reply: %v", err)
	}
	if !dropped.Load() || lost.FencingToken == 0 {
		t.Fatal("the first reply was not intercepted")
	}
	if c.LeaderIndex() == leader {
		t.Fatal("the old leader still leads")
	}
	if l.Token() != lost.FencingToken {
		t.Fatalf("token %d, want the first grant's %d: the retry acquired again", l.Token(), lost.FencingToken)
	}
	locks, err := cl.List(ctx, client.ListFilter{})
	if err != nil || len(locks) != 1 || locks[0].Token != lost.FencingToken || locks[0].Owner != "o" {
		t.Fatalf("locks = %+v, %v", locks, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	mustFree(t, ctx, cl, "k")
}

// When the caller gives up on an Acquire whose reply never came (the
// grant happened, the answer was lost), the client cleans up in the
// background: nothing is left held, even with a lock that never expires.
func TestAbandonedAcquireIsCleanedUp(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	rec := newRecorder()
	cl := newClient(t, c.Addrs(), client.WithHTTPClient(&http.Client{Transport: rec}))
	other := newClient(t, c.Addrs())
	var granted atomic.Uint64
	rec.setHook(func(req *http.Request, base http.RoundTripper) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		var m raftlockv1.AcquireResponse
		if body := readAll(resp); len(body) >= 5 {
			grpcMessage(t, body, &m)
			granted.Store(m.FencingToken)
		}
		<-req.Context().Done() // the reply never arrives
		return nil, req.Context().Err()
	})
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := cl.Acquire(actx, []string{"k"}, client.WithExpire(0))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire = %v, want the context's deadline", err)
	}
	if granted.Load() == 0 {
		t.Fatal("the server never granted the acquire; the test proves nothing")
	}
	if err := cl.Close(); err != nil { // waits for the background cleanup
		t.Fatal(err)
	}
	mustFree(t, ctx, other, "k")
}

// A client given only a follower's address works, and after its first
// call sends its requests straight to the leader.
func TestFollowerOnlyEndpoint(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := testCtx(t)
	leader := c.Leader()
	follower := c.Followers()[0]
	rec := newRecorder()
	cl := newClient(t, []string{c.Addr(follower)}, client.WithHTTPClient(&http.Client{Transport: rec}))
	l, err := cl.Acquire(ctx, []string{"k"}, client.WithOwner("o"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.since(0)[0]; got != c.Addr(follower) {
		t.Fatalf("first request went to %s, want the follower %s", got, c.Addr(follower))
	}
	n := rec.count()
	if li, err := cl.Get(ctx, "k"); err != nil || li == nil || li.Token != l.Token() {
		t.Fatalf("get = %+v, %v", li, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range rec.since(n) {
		if h != c.Addr(leader) {
			t.Fatalf("a later request went to %s, want the leader %s", h, c.Addr(leader))
		}
	}
	st, err := cl.Status(ctx)
	if err != nil || st.ID != c.ID(leader) || st.Role != "leader" || len(st.Members) != 3 {
		t.Fatalf("status = %+v, %v", st, err)
	}
}

// With every endpoint down (one refuses connections, one accepts them and
// never answers) a call fails with ErrNoLeader as soon as its context
// ends, although each attempt alone could last a minute.
func TestAllEndpointsDown(t *testing.T) {
	ctx := testCtx(t)
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hole.Close() })
	var held sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held.Lock()
			conns = append(conns, c) // keep it open, say nothing
			held.Unlock()
		}
	}()
	t.Cleanup(func() {
		held.Lock()
		defer held.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	cl := newClient(t, []string{refusedAddr, hole.Addr().String()}, client.WithAttemptTimeout(time.Minute), client.WithCleanupTimeout(time.Second))
	for _, call := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"acquire", func(ctx context.Context) error { _, err := cl.Acquire(ctx, []string{"k"}); return err }},
		{"get", func(ctx context.Context) error { _, err := cl.Get(ctx, "k"); return err }},
	} {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		start := time.Now()
		err := call.do(cctx)
		cancel()
		if !errors.Is(err, client.ErrNoLeader) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s = %v, want ErrNoLeader and context.DeadlineExceeded", call.name, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("%s returned %s after its 1 s context", call.name, took)
		}
	}
}

// A partition between the client and the cluster stops the renewals: Done
// closes, and Execute's fn context is cancelled, while the server still
// holds the key (another client cannot take it yet); later the server
// expires it and another client can.
func TestPartitionClosesDoneBeforeServerExpiry(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := testCtx(t)
	cut := newCutter()
	cl := newClient(t, c.Addrs(), client.WithHTTPClient(cut.httpClient()), client.WithCleanupTimeout(2*time.Second))
	other := newClient(t, c.Addrs())
	warmUp(t, ctx, c, cl)
	const expire = 3 * time.Second

	l, err := cl.Acquire(ctx, []string{"lock-key"}, client.WithOwner("a"), client.WithExpire(expire), client.WithAutoRefresh())
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	type seen struct {
		cause    error
		rivalErr error
	}
	inFn := make(chan seen, 1)
	execErr := make(chan error, 1)
	go func() {
		execErr <- cl.Execute(ctx, []string{"exec-key"}, func(fctx context.Context) error {
			close(started)
			<-fctx.Done()
			// At the moment fn is told to stop, nobody else may hold the key.
			_, rivalErr := other.Acquire(ctx, []string{"exec-key"}, client.WithOwner("rival"))
			inFn <- seen{cause: context.Cause(fctx), rivalErr: rivalErr}
			return fctx.Err()
		}, client.WithExpire(expire))
	}()
	<-started
	cut.Cut()

	select {
	case <-l.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("Done did not close while the client was cut off")
	}
	_, rivalErr := other.Acquire(ctx, []string{"lock-key"}, client.WithOwner("rival"))
	if !errors.Is(rivalErr, client.ErrLockHeld) {
		t.Fatalf("right after Done, another client's acquire = %v, want ErrLockHeld (Done closed too late)", rivalErr)
	}
	if !errors.Is(l.Err(), client.ErrLockLost) {
		t.Fatalf("Err = %v, want ErrLockLost", l.Err())
	}

	s := <-inFn
	if !errors.Is(s.cause, client.ErrLockLost) {
		t.Fatalf("fn's context cause = %v, want ErrLockLost", s.cause)
	}
	if !errors.Is(s.rivalErr, client.ErrLockHeld) {
		t.Fatalf("when fn was cancelled, another client's acquire = %v, want ErrLockHeld", s.rivalErr)
	}
	if err := <-execErr; !errors.Is(err, client.ErrLockLost) || !errors.Is(err, context.Canceled) {
		t.Fatalf("execute = %v, want ErrLockLost wrapping fn's error", err)
	}

	// The server expires both locks by itself.
	for _, k := range []string{"lock-key", "exec-key"} {
		c.WaitFor("the server to expire "+k, func() bool {
			rl, err := other.Acquire(ctx, []string{k}, client.WithOwner("rival"))
			if err != nil {
				return false
			}
			return rl.Release(ctx) == nil
		})
	}
}

// When a waiting Acquire's connection breaks while the node stays up, the
// node withdraws the waiter, and a retry with the same request id answers
// canceled. The client then asks again with a new id and is granted once
// the key frees: one lock, held by the caller, nothing else queued.
func TestWithdrawnWaiterIsAskedAgain(t *testing.T) {
	c := clustertest.New(t, 1)
	ctx := testCtx(t)
	rec := newRecorder()
	cl := newClient(t, c.Addrs(), client.WithHTTPClient(&http.Client{Transport: rec}))
	other := newClient(t, c.Addrs())
	holder, err := other.Acquire(ctx, []string{"k"}, client.WithOwner("holder"), client.WithExpire(0))
	if err != nil {
		t.Fatal(err)
	}
	waiting := func() bool {
		li, err := other.Get(ctx, "k")
		return err == nil && li != nil && li.Waiters == 1
	}
	var acquires atomic.Int32
	rec.setHook(func(req *http.Request, base http.RoundTripper) (*http.Response, error) {
		if acquires.Add(1) > 1 {
			return base.RoundTrip(req)
		}
		// The first attempt: break its request once it waits in the queue.
		rctx, cancel := context.WithCancel(req.Context())
		defer cancel()
		go func() {
			for !waiting() && rctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
		}()
		return base.RoundTrip(req.WithContext(rctx))
	})
	got := make(chan error, 1)
	var l *client.Lock
	go func() {
		var err error
		l, err = cl.Acquire(ctx, []string{"k"}, client.WithOwner("w"), client.WithWait(30*time.Second))
		got <- err
	}()
	c.WaitFor("the acquire to be asked again and wait", func() bool { return acquires.Load() >= 3 && waiting() })
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("acquire after the withdrawal: %v", err)
	}
	li, err := other.Get(ctx, "k")
	if err != nil || li == nil || li.Owner != "w" || li.Token != l.Token() || li.Waiters != 0 {
		t.Fatalf("after the grant: %+v, %v", li, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// An untargeted transfer moves leadership away from the node that led when
// the call began, once, and names the new leader; the client then talks to
// it. Handing leadership to the node that already leads changes nothing.
func TestTransferLeadershipMovesOnce(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := testCtx(t)
	old := c.Leader()
	cl := newClient(t, []string{c.Addr(c.Followers()[0])})
	id, addr, err := cl.TransferLeadership(ctx, "")
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if id == "" || id == c.ID(old) {
		t.Fatalf("new leader = %q (old %q)", id, c.ID(old))
	}
	c.WaitFor("the new leader to take office", func() bool { l := c.LeaderIndex(); return l >= 0 && c.ID(l) == id })
	st := c.Node(c.LeaderIndex()).Status()
	if got, got2, err := cl.TransferLeadership(ctx, id); err != nil || got != id || got2 != addr {
		t.Fatalf("transfer to the leader itself = %q %q %v, want %q %q", got, got2, err, id, addr)
	}
	if st2 := c.Node(c.LeaderIndex()).Status(); st2.Term != st.Term || st2.Id != id {
		t.Fatalf("leadership moved again: %s term %d -> %s term %d", st.Id, st.Term, st2.Id, st2.Term)
	}
}
