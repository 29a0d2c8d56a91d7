package cluster

import (
	"context"
	"time"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// Deliberately broken builds (Config.UnsafeBug, --unsafe-bug), for proving
// that the fault-injection suite catches what it claims to catch. They are
// installed here, from the configuration, and only here: nothing on the
// request path or in the office knows about them.

// unsafeClock returns the clock cluster time is stamped from: the
// configured one, or for BugWallClock one whose "monotonic" time is the
// wall clock, so a wall-clock jump moves cluster time.
func unsafeClock(cfg Config) Clock {
	if cfg.UnsafeBug == BugWallClock {
		return wallAsMonotonic{cfg.Clock}
	}
	return cfg.Clock
}

// wallAsMonotonic answers Now with the wall clock (no monotonic reading,
// so differences between its times follow wall-clock jumps).
type wallAsMonotonic struct{ c Clock }

func (w wallAsMonotonic) Now() time.Time  { return w.c.Wall() }
func (w wallAsMonotonic) Wall() time.Time { return w.c.Wall() }

// unsafeOptions returns the handler options of the deliberate bugs: for
// BugFencing an interceptor that answers every Acquire with fencing token
// 1, as if tokens never increased.
func unsafeOptions(n *Node) []connect.HandlerOption {
	if n.cfg.UnsafeBug != BugFencing {
		return nil
	}
	return []connect.HandlerOption{connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			resp, err := next(ctx, req)
			if m, ok := resp.(*connect.Response[raftlockv1.AcquireResponse]); ok && err == nil {
				m.Msg.FencingToken = 1
				for _, l := range m.Msg.Locks {
					l.FencingToken = 1
				}
			}
			return resp, err
		}
	}))}
}
