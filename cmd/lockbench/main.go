// Command lockbench is raftlock's load tool. It drives a running cluster
// through the Go client (package client) and measures what a caller sees.
//
//	lockbench [run] [flags]              C callers loop acquire -> release; prints pairs/s and latency
//	lockbench fill [flags]               take N locks that never expire, 64 keys per request
//	lockbench report [flags] FILE.json   turn --json results into a Markdown table and a PNG plot
//	lockbench compare [flags] FILE.json  the same runs of several drivers side by side (make compare)
//
// run: each of --callers workers loops Acquire -> Lock.Release (the loop
// etcd's `benchmark stm` uses). With --keys 0 (the default) each worker has
// a key of its own; with --keys K the workers share K keys (worker i takes
// key i mod K) and wait for them (--wait, 5 s by default), so every
// hand-off happens inside the Raft entry of the release that frees the
// key. After --warmup the tool measures for --duration, printing a
// progress line each second on stderr, then prints pairs per second,
// acquire and release latency (p50/p90/p99/p99.9/max, from a log-linear
// histogram accurate to 1.6 %) and the errors by kind. --json prints the
// result as one JSON object on stdout instead. The loop and its
// measurement are internal/loadgen's, shared with etcdbench (bench/etcd),
// so that make compare measures raftlock and etcd alike. --trace adds the
// client-side stages of every acquire (trace.go).
//
// Client flags (all subcommands that talk to a cluster): --endpoints
// (env RAFTLOCK_ENDPOINTS), --protocol grpc|connect-json|connect-proto,
// --tls-ca, --tls-cert, --tls-key (env RAFTLOCK_TLS_*), --token (env
// RAFTLOCK_TOKEN), as lockctl takes them.
//
// Exit status: 0 on success, 1 when the run failed (no pair completed, or
// the cluster could not be reached), 2 on a usage error. Errors of single
// calls are counted and reported, not fatal.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/raftlock/raftlock/client"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	sub := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	var err error
	switch sub {
	case "run":
		err = runCmd(args, stdout, stderr)
	case "fill":
		err = fillCmd(args, stdout, stderr)
	case "report":
		err = reportCmd(args, stdout, stderr)
	case "compare":
		err = compareCmd(args, stdout, stderr)
	default:
		err = usagef("unknown subcommand %q (want run, fill, report or compare)", sub)
	}
	var ue *usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "lockbench %s: %v\n", sub, err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "lockbench %s: %v\n", sub, err)
		return exitError
	}
	return exitOK
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// parse parses fs, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{msg: err.Error()}
	}
	return nil
}

// clientFlags are the flags that say how to reach the cluster.
type clientFlags struct {
	endpoints string
	protocol  string
	tlsCA     string
	tlsCert   string
	tlsKey    string
	token     string
	http1     bool
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	f.endpoints = envOr("RAFTLOCK_ENDPOINTS", "127.0.0.1:7070")
	fs.StringVar(&f.endpoints, "endpoints", f.endpoints, "comma-separated host:port of cluster nodes (env RAFTLOCK_ENDPOINTS)")
	fs.StringVar(&f.protocol, "protocol", "grpc", "wire protocol: grpc, connect-json or connect-proto")
	fs.StringVar(&f.tlsCA, "tls-ca", os.Getenv("RAFTLOCK_TLS_CA"), "speak TLS, trusting this CA bundle (env RAFTLOCK_TLS_CA)")
	fs.StringVar(&f.tlsCert, "tls-cert", os.Getenv("RAFTLOCK_TLS_CERT"), "client certificate to present (env RAFTLOCK_TLS_CERT)")
	fs.StringVar(&f.tlsKey, "tls-key", os.Getenv("RAFTLOCK_TLS_KEY"), "its private key (env RAFTLOCK_TLS_KEY)")
	fs.StringVar(&f.token, "token", os.Getenv("RAFTLOCK_TOKEN"), "bearer token (env RAFTLOCK_TOKEN)")
	fs.BoolVar(&f.http1, "http1", false, "with --protocol connect-proto: HTTP/1.1 connections (a pool) instead of one h2c connection per node (TLS too)")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (f *clientFlags) endpointList() []string {
	var eps []string
	for _, e := range strings.Split(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps
}

// protocolName is the wire protocol as the results name it.
func (f *clientFlags) protocolName() string {
	if f.http1 {
		return f.protocol + " over HTTP/1.1"
	}
	return f.protocol
}

// newClient builds the client the flags describe; with a tracer, its HTTP
// client reports to it (--trace).
func (f *clientFlags) newClient(tr *tracer) (*client.Client, error) {
	var p client.Protocol
	switch f.protocol {
	case "grpc":
		p = client.ProtocolGRPC
	case "connect-json":
		p = client.ProtocolConnectJSON
	case "connect-proto":
		p = client.ProtocolConnectProto
	default:
		return nil, usagef("--protocol %q: want grpc, connect-json or connect-proto", f.protocol)
	}
	if f.http1 && p != client.ProtocolConnectProto {
		return nil, usagef("--http1 needs --protocol connect-proto (connect-json is HTTP/1.1 already, grpc needs HTTP/2)")
	}
	// Retries are logged at debug level: keep them off the terminal.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	opts := []client.Option{client.WithProtocol(p), client.WithLogger(quiet)}
	var tc *tls.Config
	if f.tlsCA != "" {
		var err error
		if tc, err = client.TLSFromFiles(f.tlsCA, f.tlsCert, f.tlsKey); err != nil {
			return nil, fmt.Errorf("--tls-ca, --tls-cert, --tls-key: %w", err)
		}
		opts = append(opts, client.WithTLS(tc))
	}
	if f.token != "" {
		opts = append(opts, client.WithBearerToken(f.token))
	}
	if f.http1 || tr != nil {
		opts = append(opts, client.WithHTTPClient(httpClient(p, f.http1, tc, tr)))
	}
	eps := f.endpointList()
	if len(eps) == 0 {
		return nil, usagef("--endpoints: no endpoint given")
	}
	return client.New(eps, opts...)
}

// waitReady asks the cluster for its status until it names a leader, so
// that a run does not start by measuring an election.
func waitReady(ctx context.Context, cl *client.Client, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		st, err := cl.Status(ctx)
		if err == nil && st.LeaderAddress != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("no leader known")
			}
			return fmt.Errorf("cluster not ready within %s: %w", within, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
