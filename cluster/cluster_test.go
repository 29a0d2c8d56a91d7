package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func acquire(ctx context.Context, c raftlockv1connect.LockServiceClient, owner string, expire, wait time.Duration, keys ...string) (*raftlockv1.AcquireResponse, error) {
	req := &raftlockv1.AcquireRequest{Keys: keys, OwnerId: owner}
	if expire > 0 {
		req.Expire = durationpb.New(expire)
	}
	if wait > 0 {
		req.WaitTimeout = durationpb.New(wait)
	}
	resp, err := c.Acquire(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func mustAcquire(t *testing.T, ctx context.Context, c raftlockv1connect.LockServiceClient, owner string, keys ...string) *raftlockv1.AcquireResponse {
	t.Helper()
	r, err := acquire(ctx, c, owner, 0, 0, keys...)
	if err != nil {
		t.Fatalf("acquire %v by %q: %v", keys, owner, err)
	}
	return r
}

func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %s", code)
	}
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("code = %s (%v), want %s", got, err, code)
	}
}

func getLock(t *testing.T, ctx context.Context, c raftlockv1connect.LockServiceClient, key string) *raftlockv1.Lock {
	t.Helper()
	resp, err := c.GetLock(ctx, connect.NewRequest(&raftlockv1.GetLockRequest{Key: key}))
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return resp.Msg.Lock
}

// A 3-node cluster elects one leader; every LockService method works the
// same through a follower as through the leader (followers forward).
func TestEveryLockMethodThroughAnyNode(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	leader := c.Leader()
	for name, i := range map[string]int{"leader": leader, "follower": c.Followers()[0]} {
		t.Run(name, func(t *testing.T) {
			lc := c.LockClient(i)
			key := "k-" + name
			a := mustAcquire(t, ctx, lc, "alice", key)
			if a.FencingToken == 0 || len(a.Locks) != 1 || a.Locks[0].OwnerId != "alice" {
				t.Fatalf("acquire = %+v", a)
			}
			_, err := acquire(ctx, lc, "bob", 0, 0, key)
			wantCode(t, err, connect.CodeAborted)
			if got, want := connect.NewError(connect.CodeAborted, nil).Code(), connect.CodeOf(err); got != want {
				t.Fatal("unreachable")
			}
			var ce *connect.Error
			if errors.As(err, &ce); ce.Message() != `Failed to acquire lock for key "`+key+`"` {
				t.Fatalf("message = %q", ce.Message())
			}
			if l := getLock(t, ctx, lc, key); l.GetOwnerId() != "alice" || l.FencingToken != a.FencingToken {
				t.Fatalf("get = %+v", l)
			}
			ref, err := lc.Refresh(ctx, connect.NewRequest(&raftlockv1.RefreshRequest{Keys: []string{key}, OwnerId: "alice", Expire: durationpb.New(time.Minute)}))
			if err != nil || ref.Msg.Locks[0].ExpiresIn.AsDuration() <= 50*time.Second {
				t.Fatalf("refresh = %v, %v", ref, err)
			}
			list, err := lc.ListLocks(ctx, connect.NewRequest(&raftlockv1.ListLocksRequest{Prefix: "k-" + name}))
			if err != nil || len(list.Msg.Locks) != 1 {
				t.Fatalf("list = %v, %v", list, err)
			}
			// A waiter, cancelled through CancelAcquire.
			done := make(chan error, 1)
			go func() {
				_, err := lc.Acquire(ctx, connect.NewRequest(&raftlockv1.AcquireRequest{Keys: []string{key}, OwnerId: "carol", WaitTimeout: durationpb.New(time.Minute), RequestId: "wait-" + name}))
				done <- err
			}()
			c.WaitFor("a waiter", func() bool { return getLock(t, ctx, lc, key).Waiters == 1 })
			cr, err := lc.CancelAcquire(ctx, connect.NewRequest(&raftlockv1.CancelAcquireRequest{RequestId: "wait-" + name}))
			if err != nil || cr.Msg.Outcome.State != raftlockv1.RequestState_REQUEST_STATE_CANCELLED {
				t.Fatalf("cancel = %v, %v", cr, err)
			}
			wantCode(t, <-done, connect.CodeCanceled)
			out, err := lc.GetRequestOutcome(ctx, connect.NewRequest(&raftlockv1.GetRequestOutcomeRequest{RequestId: "wait-" + name}))
			if err != nil || out.Msg.Outcome.State != raftlockv1.RequestState_REQUEST_STATE_CANCELLED {
				t.Fatalf("outcome = %v, %v", out, err)
			}
			// Release with a stale token fails; with the current one it frees.
			stale := a.FencingToken - 1
			_, err = lc.Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{key}, OwnerId: "alice", FencingToken: &stale}))
			wantCode(t, err, connect.CodeFailedPrecondition)
			rel, err := lc.Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{key}, OwnerId: "alice", FencingToken: &a.FencingToken}))
			if err != nil || !rel.Msg.Released {
				t.Fatalf("release = %v, %v", rel, err)
			}
			mustAcquire(t, ctx, lc, "dave", key+"/1", key+"/2")
			ra, err := lc.ReleaseAll(ctx, connect.NewRequest(&raftlockv1.ReleaseAllRequest{OwnerId: "dave"}))
			if err != nil || ra.Msg.ReleasedCount != 2 {
				t.Fatalf("release all = %v, %v", ra, err)
			}
			mustAcquire(t, ctx, lc, "erin", key)
			fr, err := lc.ForceRelease(ctx, connect.NewRequest(&raftlockv1.ForceReleaseRequest{Keys: []string{key}}))
			if err != nil || fr.Msg.ReleasedCount != 1 {
				t.Fatalf("force release = %v, %v", fr, err)
			}
			if l := getLock(t, ctx, lc, key); l != nil {
				t.Fatalf("lock after force release: %+v", l)
			}
		})
	}
}
