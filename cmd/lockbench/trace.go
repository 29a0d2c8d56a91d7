package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/internal/loadgen"
)

// --trace: the client's half of the per-stage breakdown of one acquire.
//
// An acquire is timed from the call into client.Acquire (t0) to its return
// (t1). Inside, the HTTP round trip of its last attempt is cut at the
// points the client can see (httptrace hooks and a wrapper around the
// transport and the response body):
//
//	t0 ── client: before send ── round trip starts ── connection: get ── conn in hand
//	   ── request: write ── request written ── server + network ── first response byte
//	   ── response: read ── body done (EOF or Close) ── client: after receive ── t1
//
// "server + network" is everything between the last byte of the request
// leaving and the first byte of the answer arriving: the node's own stages
// (read, handler, Raft, apply, write) and two loopback hops. Its floor is
// what the node spends; the node's debug histograms split it further.
// Each stage's time is reported as a distribution (p50, p99, mean); the
// means add up to the mean acquire, percentiles do not add.
//
// Counts per measured acquire: HTTP requests (more than one means retries
// or redirects), connections opened and connections reused; after the run,
// the distinct connections the client opened over the whole run (the pool
// it ended up with: one per node for h2c, about one per caller for
// HTTP/1.1).
//
// The trace costs a few allocations per acquire (the hooks, two context
// values, a body wrapper): measure the protocols with --trace on all of
// them, and compare with an untraced run where a microsecond matters.

// Stage and count names of a trace, in order.
var (
	traceStages = []string{
		"client: before send", "connection: get", "request: write", "server + network (to first byte)",
		"response: read", "client: after receive", "time to first byte (from call)", "total",
	}
	traceCounts = []string{"http requests", "connections opened", "connections reused"}
)

// tracer times acquires; one per run, shared by all callers.
type tracer struct {
	mu    sync.Mutex
	conns map[string]struct{} // local addresses of the connections seen
}

func newTracer() *tracer { return &tracer{conns: map[string]struct{}{}} }

func (t *tracer) connections() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return uint64(len(t.conns))
}

// callTrace is the record of one acquire. Hooks run on the transport's
// goroutines (the h2 writer reports "request written" on its own), so the
// record has a lock of its own.
type callTrace struct {
	t      *tracer
	mu     sync.Mutex
	t0     time.Time
	rt     time.Time // round trip started (the last attempt)
	conn   time.Time
	wrote  time.Time
	first  time.Time
	body   time.Time
	reqs   uint64
	opened uint64
	reused uint64
}

type callKey struct{}

// start begins the record of one acquire and returns the context to make
// it with.
func (t *tracer) start(ctx context.Context) (context.Context, *callTrace) {
	c := &callTrace{t: t}
	ctx = context.WithValue(ctx, callKey{}, c)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			now := time.Now()
			addr := info.Conn.LocalAddr().String()
			t.mu.Lock()
			t.conns[addr] = struct{}{}
			t.mu.Unlock()
			c.mu.Lock()
			c.conn = now
			if info.Reused {
				c.reused++
			} else {
				c.opened++
			}
			c.mu.Unlock()
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { c.mark(&c.wrote) },
		GotFirstResponseByte: func() { c.mark(&c.first) },
	})
	c.t0 = time.Now()
	return ctx, c
}

func (c *callTrace) mark(at *time.Time) {
	now := time.Now()
	c.mu.Lock()
	*at = now
	c.mu.Unlock()
}

// finish ends the record and puts it into tr, indexed like traceStages and
// traceCounts. A stage whose end points were not both seen stays -1.
func (c *callTrace) finish(tr *loadgen.Trace) {
	t1 := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	// The h2 writer may report the request written after the answer's
	// first byte was read: the request was written by then.
	if !c.first.IsZero() && (c.wrote.IsZero() || c.wrote.After(c.first)) {
		c.wrote = c.first
	}
	points := []time.Time{c.t0, c.rt, c.conn, c.wrote, c.first, c.body, t1}
	for i := range 6 {
		if !points[i].IsZero() && !points[i+1].IsZero() {
			tr.Stages[i] = points[i+1].Sub(points[i])
		}
	}
	if !c.first.IsZero() {
		tr.Stages[6] = c.first.Sub(c.t0)
	}
	tr.Stages[7] = t1.Sub(c.t0)
	tr.Counts[0], tr.Counts[1], tr.Counts[2] = c.reqs, c.opened, c.reused
}

// traceTransport marks the start of each round trip and the end of its
// response body in the record of the acquire it belongs to.
type traceTransport struct{ next http.RoundTripper }

func (t traceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, _ := req.Context().Value(callKey{}).(*callTrace)
	if c == nil {
		return t.next.RoundTrip(req)
	}
	now := time.Now()
	c.mu.Lock() // a new attempt: only the last one's stages count
	c.rt, c.conn, c.wrote, c.first, c.body = now, time.Time{}, time.Time{}, time.Time{}, time.Time{}
	c.reqs++
	c.mu.Unlock()
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		resp.Body = &traceBody{ReadCloser: resp.Body, c: c}
	}
	return resp, err
}

// traceBody marks the first EOF or Close of a response body.
type traceBody struct {
	io.ReadCloser
	c    *callTrace
	done atomic.Bool
}

func (b *traceBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && b.done.CompareAndSwap(false, true) {
		b.c.mark(&b.c.body)
	}
	return n, err
}

func (b *traceBody) Close() error {
	if b.done.CompareAndSwap(false, true) {
		b.c.mark(&b.c.body)
	}
	return b.ReadCloser.Close()
}

// httpClient builds the HTTP client lockbench gives the Go client when it
// needs one of its own (--trace, --http1): the settings of the client's
// default (client/options.go, defaultHTTPClient) — h2c for gRPC and
// Connect binary, HTTP/1.1 for Connect JSON, HTTP/2 over TLS — except that
// http1 asks for HTTP/1.1 connections, a pool of them per node. With a
// tracer its transport marks each round trip.
func httpClient(p client.Protocol, http1 bool, tlsCfg *tls.Config, tr *tracer) *http.Client {
	protocols := new(http.Protocols)
	switch {
	case tlsCfg != nil:
		protocols.SetHTTP1(p == client.ProtocolConnectJSON || http1)
		protocols.SetHTTP2(!http1)
	case p == client.ProtocolConnectJSON || http1:
		protocols.SetHTTP1(true)
	default:
		protocols.SetUnencryptedHTTP2(true)
	}
	idle := 64 // the default's
	if http1 {
		idle = 1024 // a connection per caller stays open
	}
	d := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}
	var rt http.RoundTripper = &http.Transport{
		Protocols:           protocols,
		TLSClientConfig:     tlsCfg,
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: 10 * time.Second, PingTimeout: 5 * time.Second},
	}
	if tr != nil {
		rt = traceTransport{next: rt}
	}
	return &http.Client{Transport: rt}
}
