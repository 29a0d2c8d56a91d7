package fenceconnect_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/raftlock/raftlock/fence"
	"github.com/raftlock/raftlock/fence/fenceconnect"
)

const buyProcedure = "/shop.v1.Stock/Buy"

// stockServer serves one unary procedure, Buy(sku) -> units left, fenced
// by the interceptor, over real HTTP.
func stockServer(t *testing.T, g *fence.Guard) (*connect.Client[wrapperspb.StringValue, wrapperspb.Int64Value], *int64) {
	t.Helper()
	left := int64(5)
	mux := http.NewServeMux()
	mux.Handle(buyProcedure, connect.NewUnaryHandler(buyProcedure,
		func(ctx context.Context, req *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.Int64Value], error) {
			if tok, ok := fence.FromContext(ctx); !ok || tok == 0 {
				return nil, connect.NewError(connect.CodeInternal, errors.New("no token in the handler's context"))
			}
			left--
			return connect.NewResponse(wrapperspb.Int64(left)), nil
		},
		connect.WithInterceptors(fenceconnect.NewInterceptor(g, func(req connect.AnyRequest) string {
			return req.Any().(*wrapperspb.StringValue).GetValue()
		})),
	))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return connect.NewClient[wrapperspb.StringValue, wrapperspb.Int64Value](srv.Client(), srv.URL+buyProcedure), &left
}

func buy(cl *connect.Client[wrapperspb.StringValue, wrapperspb.Int64Value], sku, token string) error {
	req := connect.NewRequest(wrapperspb.String(sku))
	if token != "" {
		req.Header().Set(fence.Header, token)
	}
	_, err := cl.CallUnary(context.Background(), req)
	return err
}

// A stale token is refused with failed_precondition and the handler does
// not run; an equal (re-entrant) or higher token runs it; a missing or
// malformed token is invalid_argument.
func TestInterceptor(t *testing.T) {
	var g fence.Guard
	cl, left := stockServer(t, &g)
	for i, c := range []struct {
		token string
		code  connect.Code // 0: success
	}{
		{"8", 0},
		{"8", 0},
		{"11", 0},
		{"8", connect.CodeFailedPrecondition},
		{"", connect.CodeInvalidArgument},
		{"x", connect.CodeInvalidArgument},
		{strconv.Itoa(12), 0},
	} {
		err := buy(cl, "sku-1", c.token)
		if got := connect.CodeOf(err); (c.code == 0 && err != nil) || (c.code != 0 && got != c.code) {
			t.Fatalf("case %d: token %q: %v, want code %v", i, c.token, err, c.code)
		}
		if c.code == connect.CodeFailedPrecondition && !strings.Contains(err.Error(), "fenced off") {
			t.Fatalf("case %d: %v does not say fenced", i, err)
		}
	}
	if *left != 1 {
		t.Fatalf("%d units left, want 1 (four sales)", *left)
	}
}
