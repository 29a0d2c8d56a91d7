package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster/clustertest"
)

// CheckFence reports a held lock's token as current, also inside Execute
// (LockFromContext), and as stale once the next holder has the key,
// naming that holder and its token.
func TestCheckFence(t *testing.T) {
	c := clustertest.New(t, 3)
	c.Leader()
	cl := newClient(t, c.Addrs())
	ctx := testCtx(t)

	var held uint64
	err := cl.Execute(ctx, []string{"sku-9"}, func(fctx context.Context) error {
		l, _ := client.LockFromContext(fctx)
		held = l.Token()
		st, err := cl.CheckFence(fctx, "sku-9", held)
		if err != nil {
			return err
		}
		if !st.Current || st.Lock == nil || st.Lock.Token != held {
			t.Errorf("inside Execute: %+v, want current under %d", st, held)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	next, err := cl.Acquire(ctx, []string{"sku-9"}, client.WithOwner("next"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.CheckFence(ctx, "sku-9", held)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current || st.Lock == nil || st.Lock.Owner != "next" || st.Lock.Token != next.Token() {
		t.Fatalf("after the next grant: %+v, want stale, held by next under %d", st, next.Token())
	}
	if _, err := cl.CheckFence(ctx, "sku-9", 0); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("token 0: %v, want ErrInvalidArgument", err)
	}
}
