package client

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// The router sends calls to the leader it learned, follows a hint from a
// failed answer, and otherwise moves on to the next endpoint; addresses
// it learns join the rotation.
func TestRouter(t *testing.T) {
	r := newRouter([]string{"a:1", "b:1", "c:1"})
	if got := r.pick(); got != "a:1" {
		t.Fatalf("first pick = %s", got)
	}
	r.succeeded("a:1", "b:1")
	if got := r.pick(); got != "b:1" {
		t.Fatalf("after a leader hint pick = %s, want b:1", got)
	}
	if redirected := r.failed("b:1", ""); redirected || r.pick() != "c:1" {
		t.Fatalf("after the leader failed: redirected=%v pick=%s, want c:1", redirected, r.pick())
	}
	if !r.isDown("b:1") || r.isDown("c:1") {
		t.Fatal("down marks are wrong")
	}
	if redirected := r.failed("c:1", "d:9"); !redirected || r.pick() != "d:9" {
		t.Fatalf("a hint to an unlisted leader: redirected=%v pick=%s", redirected, r.pick())
	}
	r.failed("d:9", "")
	if got := r.pick(); got != "a:1" {
		t.Fatalf("after d:9 failed pick = %s, want the rotation to wrap to a:1", got)
	}
	r.failed("a:1", "")
	r.failed("b:1", "")
	r.failed("c:1", "")
	if got := r.pick(); got != "d:9" {
		t.Fatalf("learned address not in the rotation: pick = %s", got)
	}
}

// Every Connect code a server answers with maps to one client error, and
// answers that are not definite are retried.
func TestAttemptError(t *testing.T) {
	wire := func(code connect.Code, msg string) error {
		// A wire error is one that came from a server; build it the way
		// connect does for a decoded response.
		ce := connect.NewWireError(code, errors.New(msg))
		return ce
	}
	for _, tc := range []struct {
		err      error
		timedOut bool
		want     error
		text     string
	}{
		{wire(connect.CodeAborted, `Failed to acquire lock for key "k"`), false, ErrLockHeld, `Failed to acquire lock for key "k"`},
		{wire(connect.CodeDeadlineExceeded, "Timed-out acquiring lock."), false, ErrWaitTimeout, "Timed-out acquiring lock."},
		{wire(connect.CodeDeadlineExceeded, "context deadline exceeded"), false, errRetry, ""},
		{wire(connect.CodeFailedPrecondition, "not held"), false, ErrNotHeld, ""},
		{wire(connect.CodeInvalidArgument, "keys: empty"), false, ErrInvalidArgument, ""},
		{wire(connect.CodeNotFound, "id: no member"), false, ErrNotFound, ""},
		{wire(connect.CodeResourceExhausted, "full"), false, ErrLimit, ""},
		{wire(connect.CodeCanceled, "withdrawn"), false, errWithdrawn, ""},
		{wire(connect.CodeUnavailable, "no leader"), false, errRetry, ""},
		{connect.NewError(connect.CodeCanceled, errors.New("connection reset")), false, errRetry, ""},
		{connect.NewError(connect.CodeUnavailable, errors.New("dial refused")), false, errRetry, ""},
		{wire(connect.CodeAborted, "x"), true, errRetry, ""},
		{errors.New("plain"), false, errRetry, ""},
	} {
		got := attemptError(tc.err, tc.timedOut)
		if !errors.Is(got, tc.want) {
			t.Errorf("attemptError(%v, %v) = %v, want %v", tc.err, tc.timedOut, got, tc.want)
		}
		if tc.text != "" && got.Error() != tc.text {
			t.Errorf("text = %q, want %q", got.Error(), tc.text)
		}
		if ce := new(connect.Error); tc.want != errRetry && !errors.As(got, &ce) {
			t.Errorf("%v does not unwrap to the connect error", got)
		}
	}
	if got := attemptError(wire(connect.CodeInternal, "bug"), false); errors.Is(got, errRetry) || connect.CodeOf(got) != connect.CodeInternal {
		t.Errorf("an unmapped code = %v", got)
	}
}

// The margin is the configured one plus 0.1%, capped at a third of the
// time to live; jitter stays within [d/2, d].
func TestMarginAndJitter(t *testing.T) {
	c := &Client{cfg: defaultConfig()}
	for _, tc := range []struct{ ttl, want time.Duration }{
		{60 * time.Second, time.Second + 60*time.Millisecond},
		{3 * time.Second, time.Second},
		{time.Second, time.Second / 3},
	} {
		if got := c.margin(tc.ttl); got != tc.want {
			t.Errorf("margin(%s) = %s, want %s", tc.ttl, got, tc.want)
		}
	}
	for range 1000 {
		if d := jitter(100 * time.Millisecond); d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("jitter = %s", d)
		}
	}
}

// New checks its endpoints and options.
func TestNewValidates(t *testing.T) {
	for i, tc := range []struct {
		endpoints []string
		opts      []Option
	}{
		{nil, nil},
		{[]string{"no-port"}, nil},
		{[]string{"http://a:1", "https://b:1"}, nil},
		{[]string{"a:1"}, []Option{WithAttemptTimeout(0)}},
		{[]string{"a:1"}, []Option{WithBackoff(time.Second, time.Millisecond)}},
		{[]string{"a:1"}, []Option{WithSafetyMargin(-1)}},
		{[]string{"a:1"}, []Option{WithProtocol(Protocol(9))}},
	} {
		if _, err := New(tc.endpoints, tc.opts...); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("case %d: New = %v, want ErrInvalidArgument", i, err)
		}
	}
	c, err := New([]string{"http://127.0.0.1:1/", "127.0.0.2:2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.route.addrs); got != "[127.0.0.1:1 127.0.0.2:2]" {
		t.Fatalf("addrs = %s", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
