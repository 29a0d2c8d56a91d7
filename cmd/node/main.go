// Command node runs one raftlock server.
//
// With no flags it starts a single-node cluster on 127.0.0.1:7070 with its
// data under ./data. Every flag can also be given in the environment as
// RAFTLOCK_<NAME> (upper case, dashes as underscores), e.g.
// RAFTLOCK_DATA_DIR; a flag on the command line wins.
//
//	node [flags]
//	node healthcheck [--addr host:port]   exit 0 if the node at addr is ready
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/raftlock/raftlock/client"
	"github.com/raftlock/raftlock/cluster"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2:]))
	}
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	// 1. Flags and environment.
	def := cluster.DefaultConfig()
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "node id (default: this node's id in --initial-cluster, else n1)")
	listen := fs.String("listen", def.Listen, "host:port of the node's one port (Raft and API)")
	advertise := fs.String("advertise", "", "host:port other nodes and clients use (default: --listen)")
	dataDir := fs.String("data-dir", def.DataDir, "directory for the Raft log, stable store and snapshots")
	logStore := fs.String("log-store", def.LogStore, "the Raft log's store: auto (raft-wal for a new data directory, raft-boltdb for one holding raft.db), wal or bolt")
	initial := fs.String("initial-cluster", "", "founding members, the same on every founder: n1=host:port,n2=host:port,...")
	join := fs.String("join", "", "address of any member of a running cluster to join")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	tlsCert := fs.String("tls-cert", "", "this node's certificate (PEM); turns TLS on for the whole port")
	tlsKey := fs.String("tls-key", "", "this node's private key (PEM)")
	tlsCA := fs.String("tls-ca", "", "CA bundle that signs node certificates (mutual TLS between nodes)")
	tlsClientCA := fs.String("tls-client-ca", "", "CA bundle for API callers' certificates (default: --tls-ca)")
	tlsClientAuth := fs.String("tls-client-auth", "verify-if-given", "API caller certificates: none, verify-if-given or require")
	authTokens := fs.String("auth-tokens", "", "token file (JSON, SHA-256 of each token, its key prefixes and verbs): every API call needs a bearer token from it; needs TLS; reloaded on SIGHUP")
	debug := fs.Bool("debug", false, "serve /debug/state (replica state hash) and /debug/pprof")
	journal := fs.String("debug-journal", "", "append one JSON line per applied Raft entry to this file (fault suite)")
	clockControl := fs.Bool("unsafe-clock-control", false, "UNSAFE, testing only: let POST /debug/clock skew this node's clocks")
	bug := fs.String("unsafe-bug", "", "UNSAFE, testing only: deliberately break the node (fencing, wallclock)")
	watchBuffer := fs.Int("watch-buffer", def.WatchBuffer, "events that may wait to be sent to one Watch stream before it is cut off (resource_exhausted)")
	maxWatches := fs.Int("max-watches", def.MaxWatches, "Watch streams this node serves at once")
	metricsDepth := fs.Int("metrics-prefix-depth", def.MetricsPrefixDepth, "per-lock metrics count a key under its first N segments (0 to 16; 0: no key text in labels)")
	metricsSep := fs.String("metrics-prefix-separator", def.MetricsPrefixSeparator, "separator of key segments for --metrics-prefix-depth")
	metricsPrefixes := fs.Int("metrics-max-prefixes", def.MetricsMaxPrefixes, "distinct key prefixes labelled in per-lock metrics; later ones count as prefix=\"other\" (1 to 10000)")
	metricsBusiest := fs.Int("metrics-busiest-keys", def.MetricsBusiestKeys, "longest queues reported by key in raftlock_queue_depth (0 to 1000; 0: none, no key names in /metrics)")
	watchHeartbeat := fs.Duration("watch-heartbeat", def.WatchHeartbeat, "how often a Watch stream says its applied index when idle")
	gcHeadroom := fs.Uint64("gc-headroom-mib", 64, "let the Go heap grow past its live size by at most max(this many MiB, half the live heap) between collections (0: Go's default, doubling; ignored when GOGC or GOMEMLIMIT is set)")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}

	// 2. Configuration.
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	peers, err := cluster.ParseInitialCluster(*initial)
	if err != nil {
		return err
	}
	cfg := def
	cfg.ID, cfg.Listen, cfg.Advertise, cfg.DataDir = *id, *listen, *advertise, *dataDir
	cfg.InitialCluster, cfg.Join, cfg.Logger = peers, *join, logger
	cfg.Debug, cfg.UnsafeBug, cfg.LogStore = *debug, *bug, *logStore
	cfg.OnFatal = func(err error) {
		// An entry this build cannot apply: going on would let this replica
		// drift from the others. Say which entry and why, then stop.
		logger.Error("stopping: this node cannot apply the replicated log; upgrade its binary (or restore its data directory)", "err", err)
		os.Exit(70)
	}
	cfg.AuthTokens = *authTokens
	cfg.WatchBuffer, cfg.MaxWatches, cfg.WatchHeartbeat = *watchBuffer, *maxWatches, *watchHeartbeat
	cfg.MetricsPrefixDepth, cfg.MetricsPrefixSeparator = *metricsDepth, *metricsSep
	cfg.MetricsMaxPrefixes, cfg.MetricsBusiestKeys = *metricsPrefixes, *metricsBusiest
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		cfg.TLS = &cluster.TLS{CertFile: *tlsCert, KeyFile: *tlsKey, CAFile: *tlsCA, ClientCAFile: *tlsClientCA, ClientAuth: *tlsClientAuth}
	}
	if *clockControl {
		cfg.Clock = cluster.NewControlledClock()
	}
	if *journal != "" {
		if err := os.MkdirAll(filepath.Dir(*journal), 0o750); err != nil {
			return fmt.Errorf("--debug-journal: %w", err)
		}
		f, err := os.OpenFile(*journal, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("--debug-journal: %w", err)
		}
		defer f.Close()
		cfg.Journal = f
	}

	if startGCHeadroom(*gcHeadroom << 20) {
		logger.Debug("garbage collector headroom capped", "headroom_mib", *gcHeadroom)
	}

	// 3. Storage, port, Raft, API: Start validates and brings them up in
	// that order.
	n, err := cluster.Start(cfg)
	if err != nil {
		return err
	}

	// 4. Serve until SIGTERM or SIGINT (SIGHUP reloads the TLS files),
	// then shut down in reverse order.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			_ = n.Reload() // it logs what it reloaded and what it kept
			continue
		case <-ctx.Done():
		}
		break
	}
	logger.Info("signal received; shutting down")
	return n.Shutdown(context.Background())
}

// parseWithEnv parses args; flags not given on the command line take their
// value from RAFTLOCK_<NAME> when it is set.
func parseWithEnv(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "RAFTLOCK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	return err
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

// healthcheck asks a node's /readyz; it needs no shell, so a FROM-scratch
// container can use it as its health check.
func healthcheck(args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7070", "host:port of the node")
	cert := fs.String("tls-cert", "", "with TLS: a certificate to present (PEM)")
	key := fs.String("tls-key", "", "with TLS: its key")
	ca := fs.String("tls-ca", "", "with TLS: the CA that signed the node's certificate")
	if err := parseWithEnv(fs, args); err != nil {
		return 2
	}
	c := &http.Client{Timeout: 3 * time.Second}
	scheme := "http"
	if *ca != "" {
		tc, err := healthTLS(*ca, *cert, *key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "healthcheck:", err)
			return 2
		}
		c.Transport = &http.Transport{TLSClientConfig: tc}
		scheme = "https"
	}
	resp, err := c.Get(scheme + "://" + *addr + "/readyz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "healthcheck: %s: %s", resp.Status, body)
		return 1
	}
	return 0
}

// healthTLS trusts the node CA and presents a certificate if one is given.
// The node is reached by its local address, which need not be in its
// certificate, so only the chain is verified, not the name.
func healthTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" {
		keyFile = "" // a key alone is not presented
	}
	tc, err := client.TLSFromFiles(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	roots := tc.RootCAs
	tc.RootCAs, tc.InsecureSkipVerify = nil, true
	tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return fmt.Errorf("no server certificate")
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: roots})
		return err
	}
	return tc, nil
}
