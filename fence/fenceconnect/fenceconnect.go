// Package fenceconnect fences Connect (and gRPC, gRPC-Web) handlers with a
// fence.Guard: a unary interceptor that reads the fencing token from the
// Raftlock-Fencing-Token request header and refuses a stale one with
// failed_precondition. It is a package of its own so that package fence
// needs nothing but the standard library.
package fenceconnect

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/raftlock/raftlock/fence"
)

// NewInterceptor returns a unary interceptor for handlers. resource names
// what a call writes ("" for a call that writes nothing: it passes
// unchecked). For the others the fence.Header token is checked with
// g.Do and the handler runs inside it, so calls for one resource run one
// at a time and no newer holder is admitted between the check and the
// handler's write. The token is in the handler's context
// (fence.FromContext).
//
// Refusals: invalid_argument when the header is missing or malformed,
// failed_precondition (wrapping fence.ErrFenced) when a higher token has
// already been accepted for the resource. Streaming calls are not
// checked; fence them inside the handler with g.Do.
func NewInterceptor(g *fence.Guard, resource func(connect.AnyRequest) string) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Spec().IsClient {
				return next(ctx, req)
			}
			res := resource(req)
			if res == "" {
				return next(ctx, req)
			}
			token, err := fence.ParseToken(req.Header().Get(fence.Header))
			if err != nil {
				return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%w (send the lock's fencing token in %s)", err, fence.Header))
			}
			var resp connect.AnyResponse
			var herr error
			err = g.Do(res, token, func() error {
				resp, herr = next(fence.NewContext(ctx, token), req)
				return nil
			})
			if errors.Is(err, fence.ErrFenced) {
				return nil, connect.NewError(connect.CodeFailedPrecondition, err)
			}
			if err != nil {
				return nil, connect.NewError(connect.CodeInvalidArgument, err)
			}
			return resp, herr
		}
	})
}
