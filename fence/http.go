package fence

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Header is the HTTP header (and Connect/gRPC metadata key) that carries a
// fencing token, in decimal.
const Header = "Raftlock-Fencing-Token"

// ParseToken reads a token as Header carries it: a decimal uint64 above 0.
func ParseToken(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, ErrNoToken
	}
	t, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q: want a decimal number", ErrBadToken, Header, s)
	}
	if t == 0 {
		return 0, ErrNoToken
	}
	return t, nil
}

// SetHeader puts token into h under Header (for the caller's side).
func SetHeader(h http.Header, token uint64) { h.Set(Header, strconv.FormatUint(token, 10)) }

type tokenKey struct{}

// NewContext returns ctx carrying token (Middleware and the Connect
// interceptor do this for the handler they admit).
func NewContext(ctx context.Context, token uint64) context.Context {
	return context.WithValue(ctx, tokenKey{}, token)
}

// FromContext returns the token NewContext stored in ctx.
func FromContext(ctx context.Context) (uint64, bool) {
	t, ok := ctx.Value(tokenKey{}).(uint64)
	return t, ok
}

// Middleware fences an HTTP handler with g. For each request, resource
// names what the request writes ("" for a request that writes nothing: it
// passes unchecked). The request's Header token is then checked with
// g.Do, and next runs inside it, so no newer holder is admitted for that
// resource until next returns (requests for one resource are served one
// at a time). The token is in the request's context (FromContext).
//
// Refusals, with a plain-text reason: 400 Bad Request when the header is
// missing or malformed, 409 Conflict when a higher token has already been
// accepted for the resource (the caller is a stale holder).
func Middleware(g *Guard, resource func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := resource(r)
		if res == "" {
			next.ServeHTTP(w, r)
			return
		}
		token, err := ParseToken(r.Header.Get(Header))
		if err != nil {
			http.Error(w, fmt.Sprintf("%v (send the lock's fencing token in %s)", err, Header), http.StatusBadRequest)
			return
		}
		err = g.Do(res, token, func() error {
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), token)))
			return nil
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
		}
	})
}
