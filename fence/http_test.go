package fence_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/raftlock/raftlock/fence"
)

// The middleware, over real HTTP: a stale token gets 409 and the handler
// does not run; a missing or malformed one gets 400; an equal or higher
// one reaches the handler with the token in its context; a request the
// resource function leaves unnamed passes unchecked.
func TestMiddleware(t *testing.T) {
	var g fence.Guard
	var seen []uint64
	h := fence.Middleware(&g, func(r *http.Request) string {
		if r.Method == http.MethodGet {
			return ""
		}
		return r.URL.Path
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := fence.FromContext(r.Context())
		seen = append(seen, tok)
		io.WriteString(w, "ok")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(method, path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set(fence.Header, token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i, c := range []struct {
		method, path, token string
		code                int
		body                string
	}{
		{"POST", "/stock/1", "10", 200, "ok"},
		{"POST", "/stock/1", "10", 200, "ok"}, // re-entrant holder
		{"POST", "/stock/1", "12", 200, "ok"},
		{"POST", "/stock/1", "10", 409, "fenced off"},
		{"POST", "/stock/2", "10", 200, "ok"},
		{"POST", "/stock/1", "", 400, fence.Header},
		{"POST", "/stock/1", "0", 400, "missing"},
		{"POST", "/stock/1", "ten", 400, "malformed"},
		{"GET", "/stock/1", "", 200, "ok"},
	} {
		code, body := do(c.method, c.path, c.token)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Fatalf("case %d: %s %s token %q = %d %q, want %d containing %q", i, c.method, c.path, c.token, code, body, c.code, c.body)
		}
	}
	want := []uint64{10, 10, 12, 10, 0}
	if len(seen) != len(want) {
		t.Fatalf("handler saw tokens %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("handler saw tokens %v, want %v", seen, want)
		}
	}
}

// ParseToken and SetHeader agree.
func TestTokenHeader(t *testing.T) {
	h := http.Header{}
	fence.SetHeader(h, 18446744073709551615)
	if tok, err := fence.ParseToken(h.Get(fence.Header)); err != nil || tok != 18446744073709551615 {
		t.Fatalf("round trip = %d, %v", tok, err)
	}
}
