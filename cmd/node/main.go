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
	initial := fs.String("initial-cluster", "", "founding members, the same on every founder: n1=host:port,n2=host:port,...")
	join := fs.String("join", "", "address of any member of a running cluster to join")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	debug := fs.Bool("debug", false, "serve /debug/state (replica state hash) and /debug/pprof")
	journal := fs.String("debug-journal", "", "append one JSON line per applied Raft entry to this file (fault suite)")
	clockControl := fs.Bool("unsafe-clock-control", false, "UNSAFE, testing only: let POST /debug/clock skew this node's clocks")
	bug := fs.String("unsafe-bug", "", "UNSAFE, testing only: deliberately break the node (fencing, wallclock)")
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
	cfg.Debug, cfg.UnsafeBug = *debug, *bug
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

	// 3. Storage, port, Raft, API: Start validates and brings them up in
	// that order.
	n, err := cluster.Start(cfg)
	if err != nil {
		return err
	}

	// 4. Serve until SIGTERM or SIGINT, then shut down in reverse order.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
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
	if err := parseWithEnv(fs, args); err != nil {
		return 2
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + *addr + "/readyz")
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
