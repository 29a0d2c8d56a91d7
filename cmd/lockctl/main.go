// Command lockctl is the command line of raftlock: it takes, releases and
// lists locks, shows and changes the cluster, and runs a command while
// holding a lock (lockctl exec).
//
// Usage:
//
//	lockctl [global flags] COMMAND [flags] [args]
//
// Global flags, accepted before or after the command name:
//
//	--endpoints host:port,...  nodes to talk to (env RAFTLOCK_ENDPOINTS; default 127.0.0.1:7070)
//	--json                     machine-readable output on stdout
//	--timeout 10s              bound on the calls of one command (not on exec's command)
//	--protocol grpc            grpc, connect-json or connect-proto
//	--tls-ca FILE              speak TLS, trusting this CA (env RAFTLOCK_TLS_CA)
//	--tls-cert, --tls-key      a client certificate to present (env RAFTLOCK_TLS_CERT, RAFTLOCK_TLS_KEY)
//	--token SECRET             bearer token for nodes with --auth-tokens (env RAFTLOCK_TOKEN; needs TLS)
//
// Commands:
//
//	acquire [--owner O] [--expire 60s] [--wait 0s] [--request-id ID] [--shared | --limit N [--permits P]] KEY...
//	release [--owner O] [--fencing-token N] [--force] KEY...
//	release-all [--owner O]
//	get KEY
//	check-fence KEY TOKEN                                              (exit 0: TOKEN is current; 1: it is not)
//	list [--prefix P] [--owner O] [--limit N]
//	status
//	members
//	add-member [--non-voter] [--supported-version N] ID ADDRESS
//	remove-member ID
//	transfer-leader [ID]
//	exec [--owner O] [--expire 60s] [--wait 5s] [--kill-grace 10s] [--shared | --limit N [--permits P]] KEY... -- COMMAND [ARG...]
//	snapshot save FILE                                                 (a backup of the lock table, written atomically)
//	snapshot inspect FILE                                              (local: check a backup, print its header and counts)
//	snapshot restore [--force] [--min-index N] FILE                    (restore a new cluster from a backup; docs/backup.md)
//	certs [--dir certs] [--hosts 127.0.0.1,localhost] [--valid 8760h]   (local: a development CA and certificates)
//	token --name N [--prefix P]... [--verbs acquire,read]               (local: a new token and its --auth-tokens entry)
//	watch [--from INDEX] [--owner O] [--key KEY] [--no-waiters] [--count N] [PREFIX]  (one line per lock event; --json: one object per line)
//	top [--n 20] [--interval 1s] [--once] [PREFIX]                    (live view of the hottest keys; --once prints it once)
//
// Flags of a command come before its arguments. Results go to stdout,
// errors to stderr. Exit status: 0 on success, 1 on an error (including a
// busy key, a wait that timed out, a release that freed nothing, or a
// check-fence whose token is not current), 2 on
// a usage error, and for exec the command's own exit status, or 3 when
// the lock was lost and the command was stopped.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/raftlock/raftlock/client"
)

// Exit statuses of lockctl itself.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitLockLost = 3
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// globals are the flags every command accepts.
type globals struct {
	endpoints string
	json      bool
	timeout   time.Duration
	protocol  string
	tlsCA     string
	tlsCert   string
	tlsKey    string
	token     string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.endpoints, "endpoints", g.endpoints, "comma-separated host:port of cluster nodes (env RAFTLOCK_ENDPOINTS)")
	fs.BoolVar(&g.json, "json", g.json, "print machine-readable JSON")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound on the calls of one command")
	fs.StringVar(&g.protocol, "protocol", g.protocol, "wire protocol: grpc, connect-json or connect-proto")
	fs.StringVar(&g.tlsCA, "tls-ca", g.tlsCA, "speak TLS, trusting this CA bundle (env RAFTLOCK_TLS_CA)")
	fs.StringVar(&g.tlsCert, "tls-cert", g.tlsCert, "client certificate to present (env RAFTLOCK_TLS_CERT)")
	fs.StringVar(&g.tlsKey, "tls-key", g.tlsKey, "its private key (env RAFTLOCK_TLS_KEY)")
	fs.StringVar(&g.token, "token", g.token, "bearer token (env RAFTLOCK_TOKEN)")
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// command is one subcommand: it registers its flags and runs.
type command struct {
	usage string
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

// env is what a running command needs.
type env struct {
	g      *globals
	cl     *client.Client
	stdout io.Writer
	stderr io.Writer
	code   int // exit status for exec
}

var commands = map[string]command{
	"acquire":         {"acquire [--owner O] [--expire 60s] [--wait 0s] [--request-id ID] [--shared | --limit N [--permits P]] KEY...", acquireCmd},
	"release":         {"release [--owner O] [--fencing-token N] [--force] KEY...", releaseCmd},
	"release-all":     {"release-all [--owner O]", releaseAllCmd},
	"get":             {"get KEY", getCmd},
	"check-fence":     {"check-fence KEY TOKEN", checkFenceCmd},
	"list":            {"list [--prefix P] [--owner O] [--limit N]", listCmd},
	"status":          {"status", statusCmd},
	"members":         {"members", membersCmd},
	"add-member":      {"add-member [--non-voter] [--supported-version N] ID ADDRESS", addMemberCmd},
	"remove-member":   {"remove-member ID", removeMemberCmd},
	"transfer-leader": {"transfer-leader [ID]", transferCmd},
	"exec":            {"exec [--owner O] [--expire 60s] [--wait 5s] [--kill-grace 10s] [--shared | --limit N [--permits P]] KEY... -- COMMAND [ARG...]", execCmd},
	"snapshot":        {snapshotUsage, snapshotCmd},
	"certs":           {"certs [--dir certs] [--hosts 127.0.0.1,localhost] [--valid 8760h]", certsCmd},
	"token":           {"token --name N [--prefix P]... [--verbs acquire,read]", tokenCmd},
	"watch":           {"watch [--from INDEX] [--owner O] [--key KEY] [--no-waiters] [--count N] [PREFIX]", watchCmd},
	"top":             {"top [--n 20] [--interval 1s] [--once] [PREFIX]", topCmd},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: lockctl [--endpoints host:port,...] [--json] [--timeout 10s] [--protocol grpc] COMMAND [flags] [args]")
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintln(w, "  lockctl "+commands[n].usage)
	}
	fmt.Fprintln(w, "exit status: 0 ok, 1 error (check-fence: also the token is not current), 2 usage, 3 lock lost during exec; exec otherwise passes the command's status through")
}

// run is main without the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{endpoints: "127.0.0.1:7070", timeout: 10 * time.Second, protocol: "grpc",
		tlsCA: os.Getenv("RAFTLOCK_TLS_CA"), tlsCert: os.Getenv("RAFTLOCK_TLS_CERT"), tlsKey: os.Getenv("RAFTLOCK_TLS_KEY"),
		token: os.Getenv("RAFTLOCK_TOKEN")}
	if e := os.Getenv("RAFTLOCK_ENDPOINTS"); e != "" {
		g.endpoints = e
	}
	top := flag.NewFlagSet("lockctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "lockctl: %v\n", err)
		usage(stderr)
		return exitUsage
	}
	if top.NArg() == 0 {
		usage(stderr)
		return exitUsage
	}
	name, rest := top.Arg(0), top.Args()[1:]
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "lockctl: unknown command %q\n", name)
		usage(stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("lockctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runFn := cmd.flags(fs)
	g.register(fs)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: lockctl "+cmd.usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "lockctl %s: %v\nusage: lockctl %s\n", name, err, cmd.usage)
		return exitUsage
	}
	if local, ok := localCommands[name]; ok {
		if err := local(e0(g, stdout, stderr), fs.Args()); err != nil {
			fmt.Fprintf(stderr, "lockctl %s: %v\n", name, err)
			return exitError
		}
		return exitOK
	}
	cl, err := newClient(g)
	if err != nil {
		fmt.Fprintf(stderr, "lockctl: %v\n", err)
		return exitUsage
	}
	defer cl.Close()
	e := &env{g: g, cl: cl, stdout: stdout, stderr: stderr}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	if streaming[name] {
		ctx, cancel = signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	}
	defer cancel()
	err = runFn(ctx, e, fs.Args())
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "lockctl %s: %v\nusage: lockctl %s\n", name, err, cmd.usage)
		return exitUsage
	case errors.Is(err, client.ErrLockLost) && name == "exec":
		fmt.Fprintf(stderr, "lockctl: the lock was lost; the command was stopped: %v\n", err)
		return exitLockLost
	case err != nil:
		fmt.Fprintf(stderr, "lockctl: %v\n", err)
		return exitError
	}
	return e.code
}

func newClient(g *globals) (*client.Client, error) {
	var eps []string
	for _, e := range strings.Split(g.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	var p client.Protocol
	switch g.protocol {
	case "grpc":
		p = client.ProtocolGRPC
	case "connect-json":
		p = client.ProtocolConnectJSON
	case "connect-proto":
		p = client.ProtocolConnectProto
	default:
		return nil, fmt.Errorf("--protocol %q: want grpc, connect-json or connect-proto", g.protocol)
	}
	if g.timeout <= 0 {
		return nil, fmt.Errorf("--timeout must be positive")
	}
	// Retries are logged at debug level: keep them off the terminal.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	opts := []client.Option{client.WithProtocol(p), client.WithLogger(quiet)}
	if g.tlsCA != "" {
		tc, err := client.TLSFromFiles(g.tlsCA, g.tlsCert, g.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca, --tls-cert, --tls-key: %w", err)
		}
		opts = append(opts, client.WithTLS(tc))
	}
	if g.token != "" {
		if g.tlsCA == "" && slices.ContainsFunc(eps, func(e string) bool { return !strings.HasPrefix(e, "https://") }) {
			return nil, fmt.Errorf("--token needs TLS (--tls-ca, or https:// endpoints): a bearer token must not cross the network in clear")
		}
		opts = append(opts, client.WithBearerToken(g.token))
	}
	return client.New(eps, opts...)
}

// print writes v as JSON with --json, else the human text.
func (e *env) print(v any, human string) error {
	if e.g.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := io.WriteString(e.stdout, human)
	return err
}

// ownerFlag is an --owner flag that knows whether it was given (the empty
// owner is a real, anonymous owner).
type ownerFlag struct {
	v   string
	set bool
}

func (o *ownerFlag) String() string     { return o.v }
func (o *ownerFlag) Set(s string) error { o.v, o.set = s, true; return nil }

func needKeys(args []string) error {
	if len(args) == 0 {
		return usagef("at least one KEY is required")
	}
	return nil
}

// lockJSON is a lock as lockctl prints it; durations are Go duration
// strings, like the API's JSON ("59.5s").
type lockJSON struct {
	Key       string `json:"key"`
	Held      bool   `json:"held"`
	Owner     string `json:"owner,omitempty"`
	Token     uint64 `json:"token,omitempty"`
	ExpiresIn string `json:"expires_in,omitempty"`
	Waiters   int    `json:"waiters,omitempty"`
	// Mode, Limit and Holders describe shared and semaphore keys
	// (modes.go); an exclusive lock prints as before.
	Mode    string       `json:"mode,omitempty"`
	Limit   int          `json:"limit,omitempty"`
	Holders []holderJSON `json:"holders,omitempty"`
}

func lockOut(li client.LockInfo) lockJSON {
	out := lockJSON{Key: li.Key, Held: true, Owner: li.Owner, Token: li.Token, Waiters: li.Waiters, Limit: li.Limit, Holders: holdersOut(li)}
	if li.Mode != client.Exclusive {
		out.Mode = li.Mode.String()
	}
	if li.Expires {
		out.ExpiresIn = li.ExpiresIn.String()
	}
	return out
}

func expiry(li client.LockInfo) string {
	if !li.Expires {
		return "never"
	}
	return li.ExpiresIn.Round(time.Millisecond).String()
}

func acquireCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	var owner ownerFlag
	fs.Var(&owner, "owner", "owner of the lock (default: anonymous)")
	expire := fs.Duration("expire", client.DefaultExpire, "time to live; 0: never expires")
	wait := fs.Duration("wait", 0, "how long to wait when a key is busy; 0: fail at once")
	rid := fs.String("request-id", "", "request id, to retry an acquire exactly once")
	modes := registerModeFlags(fs)
	return func(ctx context.Context, e *env, args []string) error {
		if err := needKeys(args); err != nil {
			return err
		}
		modeOpts, err := modes.options()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.g.timeout+*wait)
		defer cancel()
		opts := append([]client.LockOption{client.WithOwner(owner.v), client.WithExpire(*expire), client.WithWait(*wait)}, modeOpts...)
		if *rid != "" {
			opts = append(opts, client.WithRequestID(*rid))
		}
		l, err := e.cl.Acquire(ctx, args, opts...)
		if err != nil {
			return err
		}
		exp := "never expires"
		if *expire > 0 {
			exp = "expires in " + expire.String() + " unless refreshed"
		}
		return e.print(struct {
			Keys   []string            `json:"keys"`
			Owner  string              `json:"owner"`
			Token  uint64              `json:"token"`
			Tokens map[string]uint64   `json:"tokens"`
			Expire string              `json:"expire"`
			Mode   string              `json:"mode"`
			Slots  map[string][]uint32 `json:"slots,omitempty"`
		}{l.Keys(), l.Owner(), l.Token(), l.Tokens(), expire.String(), l.Mode().String(), l.Slots()},
			fmt.Sprintf("acquired %s (owner %q, fencing token %d%s, %s)\n", strings.Join(l.Keys(), ", "), l.Owner(), l.Token(), modeText(l), exp))
	}
}

func releaseCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	var owner ownerFlag
	fs.Var(&owner, "owner", "owner of the lock (default: anonymous)")
	// Not --token: that is the global bearer token.
	token := fs.String("fencing-token", "", "free the keys only if they still carry this fencing token")
	force := fs.Bool("force", false, "free the keys whoever holds them (administrative)")
	return func(ctx context.Context, e *env, args []string) error {
		if err := needKeys(args); err != nil {
			return err
		}
		switch {
		case *force:
			if owner.set || *token != "" {
				return usagef("--force takes no --owner or --fencing-token")
			}
			n, err := e.cl.ForceRelease(ctx, args)
			if err != nil {
				return err
			}
			return e.print(map[string]any{"released_count": n}, fmt.Sprintf("force-released %d of %d keys\n", n, len(args)))
		case *token != "":
			tk, err := strconv.ParseUint(*token, 10, 64)
			if err != nil {
				return usagef("--fencing-token %q: %v", *token, err)
			}
			if err := e.cl.ReleaseWithToken(ctx, args, owner.v, tk); err != nil {
				return err
			}
			return e.print(map[string]any{"released": true}, fmt.Sprintf("released %s\n", strings.Join(args, ", ")))
		}
		ok, err := e.cl.Release(ctx, args, owner.v)
		if err != nil {
			return err
		}
		if !ok {
			if e.g.json {
				_ = e.print(map[string]any{"released": false}, "")
			}
			return fmt.Errorf("not released: not every key was held by owner %q (keys held by this owner were freed)", owner.v)
		}
		return e.print(map[string]any{"released": true}, fmt.Sprintf("released %s\n", strings.Join(args, ", ")))
	}
}

func releaseAllCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	var owner ownerFlag
	fs.Var(&owner, "owner", "owner whose locks to free (default: anonymous locks)")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 0 {
			return usagef("release-all takes no arguments")
		}
		n, err := e.cl.ReleaseAll(ctx, owner.v)
		if err != nil {
			return err
		}
		return e.print(map[string]any{"released_count": n}, fmt.Sprintf("released %d locks of owner %q\n", n, owner.v))
	}
}

func getCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("get takes exactly one KEY")
		}
		li, err := e.cl.Get(ctx, args[0])
		if err != nil {
			return err
		}
		if li == nil {
			return e.print(lockJSON{Key: args[0]}, fmt.Sprintf("%s: free\n", args[0]))
		}
		return e.print(lockOut(*li), fmt.Sprintf("%s: %s, fencing token %d, expires in %s, %d waiting\n",
			li.Key, heldText(*li), li.Token, expiry(*li), li.Waiters))
	}
}

// checkFenceCmd asks whether TOKEN is still KEY's current grant. Exit 0:
// it is; exit 1: it is not (stdout says who holds the key now), or the
// call failed (stderr says why).
func checkFenceCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 2 {
			return usagef("check-fence takes a KEY and a TOKEN")
		}
		key := args[0]
		tk, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil || tk == 0 {
			return usagef("TOKEN %q: want a fencing token, a positive integer", args[1])
		}
		st, err := e.cl.CheckFence(ctx, key, tk)
		if err != nil {
			return err
		}
		out := struct {
			Key     string    `json:"key"`
			Token   uint64    `json:"token"`
			Current bool      `json:"current"`
			Lock    *lockJSON `json:"lock,omitempty"`
		}{Key: key, Token: tk, Current: st.Current}
		var human string
		switch {
		case st.Lock != nil:
			lj := lockOut(*st.Lock)
			out.Lock = &lj
			now := fmt.Sprintf("held by %q under token %d, expires in %s", st.Lock.Owner, st.Lock.Token, expiry(*st.Lock))
			if st.Current {
				human = fmt.Sprintf("%s: token %d is current (%s)\n", key, tk, now)
			} else {
				human = fmt.Sprintf("%s: token %d is not current (%s)\n", key, tk, now)
			}
		default:
			human = fmt.Sprintf("%s: token %d is not current (the key is free)\n", key, tk)
		}
		if !st.Current {
			e.code = exitError
		}
		return e.print(out, human)
	}
}

func listCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	var owner ownerFlag
	fs.Var(&owner, "owner", "only locks of this owner (\"\" for anonymous locks)")
	prefix := fs.String("prefix", "", "only keys with this prefix")
	limit := fs.Int("limit", 0, "at most this many locks; 0: all")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 0 {
			return usagef("list takes no arguments")
		}
		locks, err := e.cl.List(ctx, client.ListFilter{Prefix: *prefix, ByOwner: owner.set, Owner: owner.v, Limit: *limit})
		if err != nil {
			return err
		}
		out := make([]lockJSON, 0, len(locks))
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tOWNER\tTOKEN\tEXPIRES IN\tWAITERS")
		for _, li := range locks {
			out = append(out, lockOut(li))
			fmt.Fprintf(tw, "%s\t%q\t%d\t%s\t%d\n", li.Key, li.Owner, li.Token, expiry(li), li.Waiters)
		}
		tw.Flush()
		if len(locks) == 0 {
			b.Reset()
			b.WriteString("no locks\n")
		}
		return e.print(out, b.String())
	}
}

func statusCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 0 {
			return usagef("status takes no arguments")
		}
		type nodeJSON struct {
			Endpoint string         `json:"endpoint"`
			Status   *client.Status `json:"status,omitempty"`
			Error    string         `json:"error,omitempty"`
		}
		var out []nodeJSON
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tID\tROLE\tTERM\tCOMMIT\tAPPLIED\tREADY\tLEADER\tLOCKS\tWAITERS\tVERSION")
		reached := 0
		for _, ep := range strings.Split(e.g.endpoints, ",") {
			if ep = strings.TrimSpace(ep); ep == "" {
				continue
			}
			st, err := e.cl.NodeStatus(ctx, ep)
			if err != nil {
				out = append(out, nodeJSON{Endpoint: ep, Error: err.Error()})
				fmt.Fprintf(tw, "%s\t-\tunreachable\t\t\t\t\t\t\t\t(%v)\n", ep, err)
				continue
			}
			reached++
			out = append(out, nodeJSON{Endpoint: ep, Status: st})
			leader := st.LeaderID
			if leader == "" {
				leader = "(none)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%v\t%s\t%d\t%d\t%s\n", ep, st.ID, st.Role, st.Term, st.CommitIndex, st.AppliedIndex, st.Ready, leader, st.Locks, st.Waiters, versionColumn(st))
		}
		tw.Flush()
		if err := e.print(out, b.String()); err != nil {
			return err
		}
		if reached == 0 {
			return fmt.Errorf("no endpoint answered")
		}
		return nil
	}
}

// versionColumn is "cluster/supported" of a node's status ("1/1" for a
// node too old to report versions).
func versionColumn(st *client.Status) string {
	cv, sv := max(st.ClusterVersion, 1), max(st.SupportedVersion, 1)
	return fmt.Sprintf("%d/%d", cv, sv)
}

func membersCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 0 {
			return usagef("members takes no arguments")
		}
		st, err := e.cl.Status(ctx)
		if err != nil {
			return err
		}
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tADDRESS\tVOTER\tLEADER\tSUPPORTS")
		for _, m := range st.Members {
			supports := "?"
			if m.SupportedVersion > 0 {
				supports = fmt.Sprint(m.SupportedVersion)
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\n", m.ID, m.Address, m.Voter, m.Leader, supports)
		}
		tw.Flush()
		members := st.Members
		if members == nil {
			members = []client.Member{}
		}
		return e.print(members, b.String())
	}
}

func addMemberCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	nonVoter := fs.Bool("non-voter", false, "add the node as a non-voting member")
	version := fs.Uint("supported-version", 0, "the log version the node's build supports (its lockctl status shows it); 0: the leader asks the running node")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 2 {
			return usagef("add-member takes ID and ADDRESS")
		}
		if err := e.cl.AddMember(ctx, args[0], args[1], !*nonVoter, client.WithSupportedVersion(uint32(*version))); err != nil {
			return err
		}
		return e.print(map[string]any{"id": args[0], "address": args[1], "voter": !*nonVoter},
			fmt.Sprintf("added %s at %s (voter: %v)\n", args[0], args[1], !*nonVoter))
	}
}

func removeMemberCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("remove-member takes one ID")
		}
		if err := e.cl.RemoveMember(ctx, args[0]); err != nil {
			return err
		}
		return e.print(map[string]any{"id": args[0], "removed": true}, fmt.Sprintf("removed %s\n", args[0]))
	}
}

func transferCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 1 {
			return usagef("transfer-leader takes at most one ID")
		}
		id := ""
		if len(args) == 1 {
			id = args[0]
		}
		lid, laddr, err := e.cl.TransferLeadership(ctx, id)
		if err != nil {
			return err
		}
		return e.print(map[string]any{"leader_id": lid, "leader_address": laddr}, fmt.Sprintf("leader is now %s (%s)\n", lid, laddr))
	}
}

// execCmd holds a lock while a command runs (like flock(1) and consul
// lock): the lock is renewed every third of its time to live; if it is
// lost, the command gets SIGTERM, then SIGKILL after --kill-grace, and
// lockctl exits 3. SIGINT, SIGTERM and SIGHUP sent to lockctl are passed
// on to the command. The command sees RAFTLOCK_FENCING_TOKEN,
// RAFTLOCK_LOCK_OWNER and RAFTLOCK_LOCK_MODE in its environment, and a
// semaphore's slots as RAFTLOCK_SLOTS ("key=0,1 other=2").
func execCmd(fs *flag.FlagSet) func(context.Context, *env, []string) error {
	var owner ownerFlag
	fs.Var(&owner, "owner", "owner of the lock (default: unique to this run)")
	expire := fs.Duration("expire", client.DefaultExpire, "time to live, renewed every third of it")
	wait := fs.Duration("wait", client.DefaultExecuteWait, "how long to wait when a key is busy")
	grace := fs.Duration("kill-grace", 10*time.Second, "time between SIGTERM and SIGKILL when the lock is lost")
	modes := registerModeFlags(fs)
	return func(_ context.Context, e *env, args []string) error {
		i := slices.Index(args, "--")
		if i < 0 || i == len(args)-1 {
			return usagef("exec needs KEY... -- COMMAND [ARG...]")
		}
		keys, argv := args[:i], args[i+1:]
		if err := needKeys(keys); err != nil {
			return err
		}
		if *expire <= 0 {
			return usagef("--expire must be positive: the lock is renewed while the command runs")
		}
		modeOpts, err := modes.options()
		if err != nil {
			return err
		}
		opts := append([]client.LockOption{client.WithExpire(*expire), client.WithWait(*wait)}, modeOpts...)
		if owner.set {
			opts = append(opts, client.WithOwner(owner.v))
		}
		// The timeout bounds getting the lock, never the command: the timer
		// is stopped once fn starts.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		timer := time.AfterFunc(e.g.timeout+*wait, cancel)
		return e.cl.Execute(ctx, keys, func(ctx context.Context) error {
			if !timer.Stop() {
				return fmt.Errorf("exec: timed out getting the lock")
			}
			l, _ := client.LockFromContext(ctx)
			code, err := runHolding(ctx, argv, l, *grace, e.stderr)
			e.code = code
			return err
		}, opts...)
	}
}

// runHolding runs argv until it exits or ctx ends (the lock was lost), and
// returns its exit status.
func runHolding(ctx context.Context, argv []string, l *client.Lock, grace time.Duration, stderr io.Writer) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"RAFTLOCK_FENCING_TOKEN="+strconv.FormatUint(l.Token(), 10),
		"RAFTLOCK_LOCK_OWNER="+l.Owner(),
		"RAFTLOCK_LOCK_MODE="+l.Mode().String())
	if l.Mode() == client.Semaphore {
		cmd.Env = append(cmd.Env, "RAFTLOCK_SLOTS="+slotsText(l))
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return exitError, fmt.Errorf("exec: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	for {
		select {
		case <-exited:
			return exitStatus(cmd.ProcessState), nil
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case <-ctx.Done():
			fmt.Fprintf(stderr, "lockctl: lock lost (%v); stopping the command\n", context.Cause(ctx))
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				_ = cmd.Process.Kill()
			}
			select {
			case <-exited:
			case <-time.After(grace):
				_ = cmd.Process.Kill()
				<-exited
			}
			return exitStatus(cmd.ProcessState), ctx.Err()
		}
	}
}

// exitStatus is the shell's view of a finished process: its exit code, or
// 128 + the signal that killed it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
