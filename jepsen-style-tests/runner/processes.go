package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/raftlock/raftlock/internal/testcluster"
	"github.com/raftlock/raftlock/jepsen-style-tests/history"
	"github.com/raftlock/raftlock/jepsen-style-tests/nemesis"
)

// ProcessConfig describes the cluster of real node processes: each node on
// its own loopback address (127.0.0.11, .12, …; Linux routes all of 127/8
// to lo), so network faults can be aimed at one node by address.
type ProcessConfig struct {
	// Binary is the node binary (testcluster.Build).
	Binary string
	// Nodes is the number of nodes (3 or 5).
	Nodes int
	// Dir holds each node's data directory, log and journal (nX/).
	Dir string
	// FirstIP is the last octet of the first node's 127.0.0.x address
	// (default 11).
	FirstIP int
	// Port is every node's port (default 7070; each node has its own IP).
	Port int
	// ExtraArgs are passed to every node (e.g. --unsafe-bug fencing).
	ExtraArgs []string
	// TLSDir, when set, holds ca.crt, node.crt/key and client.crt/key (see
	// cluster/certs.DevSet): the nodes then speak TLS only, and the
	// backend's own calls present the client certificate.
	TLSDir string
}

// Processes is the backend of real node processes on loopback addresses,
// run by the process harness (internal/testcluster).
type Processes struct {
	*testcluster.Cluster
	ips     []string
	fw      *nemesis.Firewall
	clients []string
}

// NewProcesses starts a process cluster and returns it as a backend. The
// nodes run with the debug journal, state hashes and clock control on.
// Clients connect from 127.0.0.(100+i).
func NewProcesses(cfg ProcessConfig, clients int) (*Processes, error) {
	if cfg.FirstIP == 0 {
		cfg.FirstIP = 11
	}
	if cfg.Port == 0 {
		cfg.Port = 7070
	}
	p := &Processes{}
	var addrs []string
	for i := range cfg.Nodes {
		ip := fmt.Sprintf("127.0.0.%d", cfg.FirstIP+i)
		p.ips = append(p.ips, ip)
		addrs = append(addrs, fmt.Sprintf("%s:%d", ip, cfg.Port))
	}
	c, err := testcluster.Start(testcluster.Config{
		Nodes: cfg.Nodes, Binary: cfg.Binary, Dir: cfg.Dir, Addrs: addrs, TLSDir: cfg.TLSDir,
		Debug: true, Journal: true,
		Args: append([]string{"--unsafe-clock-control", "--log-format", "json"}, cfg.ExtraArgs...),
	})
	if err != nil {
		return nil, err
	}
	p.Cluster = c
	for i := range clients {
		p.clients = append(p.clients, fmt.Sprintf("127.0.0.%d", 100+i))
	}
	return p, nil
}

// Name says "processes".
func (p *Processes) Name() string { return "processes" }

// Size returns the number of nodes.
func (p *Processes) Size() int { return p.Len() }

// Leader returns the leader every running, responsive node names.
func (p *Processes) Leader(ctx context.Context) (int, error) { return p.FindLeader(ctx) }

// Endpoints are the nodes' addresses.
func (p *Processes) Endpoints() []string { return p.Addrs() }

// FaultAddrs are the nodes' IPs.
func (p *Processes) FaultAddrs() []string { return p.ips }

// Hosts is nil: the nodes advertise addresses clients can dial.
func (p *Processes) Hosts() map[string]string { return nil }

// ClientAddrs are the clients' source IPs.
func (p *Processes) ClientAddrs() []string { return p.clients }

// CanControlClocks: the nodes run with --unsafe-clock-control.
func (p *Processes) CanControlClocks() bool { return true }

// Network returns an iptables/tc firewall on lo, if this machine allows.
func (p *Processes) Network(ctx context.Context) (nemesis.Network, error) {
	if err := nemesis.CanFirewall(ctx); err != nil {
		return nil, err
	}
	if p.fw == nil {
		p.fw = nemesis.NewFirewall("lo")
	}
	return p.fw, nil
}

// States fetches every node's /debug/state.
func (p *Processes) States(ctx context.Context) (map[string]State, error) {
	out := map[string]State{}
	for i := range p.Len() {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := p.State(ctx, i)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.ID(i), err)
		}
		out[p.ID(i)] = State{Index: st.Index, Hash: st.Hash}
	}
	return out, nil
}

// Journals reads every node's journal.
func (p *Processes) Journals() (map[string][]history.Entry, error) {
	out := map[string][]history.Entry{}
	for i := range p.Len() {
		entries, _, err := history.LoadJournal(p.JournalFile(i))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.ID(i), err)
		}
		out[p.ID(i)] = entries
	}
	return out, nil
}

// Logs lists the node logs.
func (p *Processes) Logs() []string {
	var out []string
	for i := range p.Len() {
		out = append(out, p.LogFile(i))
	}
	return out
}

// Close removes network faults and stops the nodes.
func (p *Processes) Close() {
	if p.fw != nil {
		_ = p.fw.Close(context.Background())
	}
	p.Cluster.Close()
}
