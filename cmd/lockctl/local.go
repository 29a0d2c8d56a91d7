package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/raftlock/raftlock/cluster/certs"
	"github.com/raftlock/raftlock/cluster/tokens"
)

// localCommands run without talking to a cluster. Their flag functions
// (certsCmd, tokenCmd) return a stub runner; the real work happens here.
var localCommands = map[string]func(e *env, args []string) error{
	"certs": runCerts,
	"token": runToken,
}

func e0(g *globals, stdout, stderr io.Writer) *env { return &env{g: g, stdout: stdout, stderr: stderr} }

var localFlags struct {
	dir, hosts string
	valid      time.Duration
	name       string
	prefixes   multiFlag
	verbs      string
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func certsCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	fs.StringVar(&localFlags.dir, "dir", "certs", "directory to write ca.crt/key, node.crt/key and client.crt/key into")
	fs.StringVar(&localFlags.hosts, "hosts", "127.0.0.1,localhost", "comma-separated DNS names and IPs the node certificate is valid for")
	fs.DurationVar(&localFlags.valid, "valid", 365*24*time.Hour, "validity of the certificates")
	return nil
}

// runCerts writes a development CA, one node certificate valid for every
// host given (all nodes may share it) and a client certificate.
func runCerts(e *env, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	var hosts []string
	for _, h := range strings.Split(localFlags.hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return usagef("--hosts: at least one host is required")
	}
	if err := certs.DevSet(localFlags.dir, hosts, localFlags.valid); err != nil {
		return err
	}
	return e.print(map[string]any{"dir": localFlags.dir, "hosts": hosts, "files": []string{"ca.crt", "ca.key", "node.crt", "node.key", "client.crt", "client.key"}},
		fmt.Sprintf("wrote a development CA and certificates for %s into %s/ (ca.crt, node.crt/key, client.crt/key)\n", strings.Join(hosts, ", "), localFlags.dir))
}

func tokenCmd(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error {
	localFlags.prefixes = nil
	fs.StringVar(&localFlags.name, "name", "", "name of the token (shown in logs and errors)")
	fs.Var(&localFlags.prefixes, "prefix", "key prefix the token may touch (repeatable; none: every key)")
	fs.StringVar(&localFlags.verbs, "verbs", "acquire,read", "comma-separated verbs: acquire, read, admin")
	return nil
}

// runToken prints a new random token and the entry that allows it, for the
// node's --auth-tokens file (which stores only the SHA-256 of the token).
func runToken(e *env, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	if localFlags.name == "" {
		return usagef("--name is required")
	}
	secret, err := tokens.NewSecret()
	if err != nil {
		return err
	}
	entry := tokens.Token{Name: localFlags.name, SHA256: tokens.Hash(secret), Prefixes: localFlags.prefixes, Verbs: strings.Split(localFlags.verbs, ",")}
	line, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	return e.print(map[string]any{"token": secret, "entry": entry},
		fmt.Sprintf("token (give it to the client; it is not stored anywhere): %s\nentry for the --auth-tokens file's \"tokens\" list:\n%s\n", secret, line))
}
