package cluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
	"github.com/raftlock/raftlock/api/gen/raftlock/v1/raftlockv1connect"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

func acquireMode(ctx context.Context, c raftlockv1connect.LockServiceClient, req *raftlockv1.AcquireRequest) (*raftlockv1.AcquireResponse, error) {
	r, err := c.Acquire(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

// Shared and semaphore holds through a follower, over the real API: many
// readers at once with the writer kept out, GetLock listing every holder,
// a semaphore's limit and slots, a waiting semaphore request granted
// through forwarding with its slots, and the refusals (wrong mode:
// failed_precondition; no owner: invalid_argument naming owner_id).
func TestModesThroughFollower(t *testing.T) {
	c := clustertest.New(t, 3)
	ctx := ctxT(t)
	c.WaitForVersion(2)
	lc := c.LockClient(c.Followers()[0])
	shared := raftlockv1.LockMode_LOCK_MODE_SHARED
	semaphore := raftlockv1.LockMode_LOCK_MODE_SEMAPHORE

	r1, err := acquireMode(ctx, lc, &raftlockv1.AcquireRequest{Keys: []string{"stock"}, OwnerId: "report-1", Mode: shared})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquireMode(ctx, lc, &raftlockv1.AcquireRequest{Keys: []string{"stock"}, OwnerId: "report-2", Mode: shared}); err != nil {
		t.Fatal(err)
	}
	if r1.Locks[0].Mode != shared {
		t.Fatalf("acquire reports mode %s", r1.Locks[0].Mode)
	}
	_, err = acquire(ctx, lc, "recount", 0, 0, "stock")
	wantCode(t, err, connect.CodeAborted)
	l := getLock(t, ctx, lc, "stock")
	if l.Mode != shared || len(l.Holders) != 2 || l.OwnerId != "" || l.Holders[0].OwnerId != "report-1" {
		t.Fatalf("GetLock: %+v", l)
	}

	sem := func(owner string, permits uint32, wait time.Duration) (*raftlockv1.AcquireResponse, error) {
		req := &raftlockv1.AcquireRequest{Keys: []string{"imports"}, OwnerId: owner, Mode: semaphore, Limit: 2, Permits: permits}
		if wait > 0 {
			req.WaitTimeout = durationpb.New(wait)
			req.RequestId = owner + "-req"
		}
		return acquireMode(ctx, lc, req)
	}
	a, err := sem("a", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sem("b", 1, 0); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Locks[0].Slots, []uint32{0}) || a.Locks[0].Limit != 2 {
		t.Fatalf("semaphore grant: %+v", a.Locks[0])
	}
	_, err = sem("c", 1, 0)
	wantCode(t, err, connect.CodeAborted)

	done := make(chan *raftlockv1.AcquireResponse, 1)
	go func() {
		r, err := sem("c", 1, 10*time.Second)
		if err != nil {
			t.Errorf("waiting semaphore acquire: %v", err)
		}
		done <- r
	}()
	c.WaitFor("the semaphore waiter queued", func() bool { return getLock(t, ctx, lc, "imports").GetWaiters() == 1 })
	if _, err := lc.Release(ctx, connect.NewRequest(&raftlockv1.ReleaseRequest{Keys: []string{"imports"}, OwnerId: "a"})); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got == nil || !slices.Equal(got.Locks[0].Slots, []uint32{0}) {
		t.Fatalf("waiter granted %+v, want slot 0", got)
	}

	_, err = acquireMode(ctx, lc, &raftlockv1.AcquireRequest{Keys: []string{"imports"}, OwnerId: "d", Mode: semaphore, Limit: 3})
	wantCode(t, err, connect.CodeFailedPrecondition)
	if !strings.Contains(err.Error(), "limit 2, the request names limit 3") {
		t.Fatalf("message: %v", err)
	}
	_, err = acquire(ctx, lc, "d", 0, 0, "imports")
	wantCode(t, err, connect.CodeFailedPrecondition)
	_, err = acquireMode(ctx, lc, &raftlockv1.AcquireRequest{Keys: []string{"stock"}, Mode: shared})
	wantCode(t, err, connect.CodeInvalidArgument)
	if !strings.Contains(err.Error(), "owner_id") {
		t.Fatalf("message: %v", err)
	}
}
