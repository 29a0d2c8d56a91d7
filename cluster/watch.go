package cluster

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	raftlockv1 "github.com/raftlock/raftlock/api/gen/raftlock/v1"
)

// Watch streams lock changes; see watchhub.go.
func (s *lockService) Watch(ctx context.Context, req *connect.Request[raftlockv1.WatchRequest], stream *connect.ServerStream[raftlockv1.WatchResponse]) error {
	return connect.NewError(connect.CodeUnimplemented, errors.New("watch is not implemented yet"))
}
