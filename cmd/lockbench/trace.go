package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
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
// the distinct connections the traced acquires used over the whole run,
// warm-up included (the pool the client ended up with: one per node it
// talks to for h2c, up to one per caller for HTTP/1.1).
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
	// traceConnsUsed is the count lockbench adds after the run.
	traceConnsUsed = "connections used (whole run)"
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

// writeTrace adds the tables of the traced groups (lockbench run --trace)
// to a report: per group the medians over its runs of the totals, the
// connection counts and each client-side stage. Untraced groups are left
// out.
func writeTrace(w *strings.Builder, groups []*group) {
	var traced []*group
	for _, g := range groups {
		if g.runs[0].Trace != nil {
			traced = append(traced, g)
		}
	}
	if len(traced) == 0 {
		return
	}
	stage := func(name string, pick func(loadgen.Summary) float64) func(*Result) float64 {
		return func(r *Result) float64 { s, _ := r.Trace.Stage(name); return pick(s) }
	}
	p50 := func(s loadgen.Summary) float64 { return s.P50 }
	p99 := func(s loadgen.Summary) float64 { return s.P99 }
	mean := func(s loadgen.Summary) float64 { return s.Mean }
	perAcquire := func(count string) func(*Result) float64 {
		return func(r *Result) float64 {
			if r.Pairs == 0 {
				return 0
			}
			return float64(r.Trace.Counts[count]) / float64(r.Pairs)
		}
	}
	fmt.Fprintf(w, "\n## Client-side trace of an acquire (--trace)\n\n")
	fmt.Fprintf(w, "Stages as cmd/lockbench/trace.go defines them; medians over the runs. "+
		"\"server + network\" runs from the request's last byte leaving to the answer's first byte arriving: "+
		"the node's own stages and two loopback hops.\n\n")
	fmt.Fprintf(w, "| workload | protocol | pairs/s | acquire p50 / p99 ms | to first byte p50 / p99 ms | HTTP requests per acquire | connections opened per 1,000 acquires | connections used (whole run) |\n")
	fmt.Fprintf(w, "| --- | --- | ---: | --- | --- | ---: | ---: | ---: |\n")
	for _, g := range traced {
		fmt.Fprintf(w, "| %s | %s | %s | %s / %s | %s / %s | %.2f | %.1f | %s |\n", g.name, g.runs[0].Protocol,
			fmtCount(g.medianOf(func(r *Result) float64 { return r.PairsPerSec })),
			fmtMs(g.medianOf(func(r *Result) float64 { return r.Acquire.P50 })), fmtMs(g.medianOf(func(r *Result) float64 { return r.Acquire.P99 })),
			fmtMs(g.medianOf(stage(traceStages[6], p50))), fmtMs(g.medianOf(stage(traceStages[6], p99))),
			g.medianOf(perAcquire(traceCounts[0])), 1000*g.medianOf(perAcquire(traceCounts[1])),
			fmtCount(g.medianOf(func(r *Result) float64 { return float64(r.Trace.Counts[traceConnsUsed]) })))
	}
	fmt.Fprintf(w, "\nTime per stage in µs, p50 (mean); the means add up to the mean acquire (last column):\n\n")
	fmt.Fprintf(w, "| workload | %s | acquire mean µs |\n", strings.Join(traceStages[:6], " | "))
	fmt.Fprintf(w, "|---%s| ---: |\n", strings.Repeat("| ---: ", 6))
	us := func(ms float64) string { return fmtCount(ms * 1000) }
	for _, g := range traced {
		cells := make([]string, 6)
		for i, name := range traceStages[:6] {
			cells[i] = fmt.Sprintf("%s (%s)", us(g.medianOf(stage(name, p50))), us(g.medianOf(stage(name, mean))))
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", g.name, strings.Join(cells, " | "), us(g.medianOf(func(r *Result) float64 { return r.Acquire.Mean })))
	}
}
