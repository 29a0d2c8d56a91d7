package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/raftlock/raftlock/jepsen-style-tests/history"
	"github.com/raftlock/raftlock/jepsen-style-tests/nemesis"
	"github.com/raftlock/raftlock/jepsen-style-tests/procs"
)

// Processes is the backend of real node processes on loopback addresses.
type Processes struct {
	*procs.Cluster
	fw      *nemesis.Firewall
	clients []string
}

// NewProcesses starts a process cluster and returns it as a backend.
// Clients connect from 127.0.0.(100+i).
func NewProcesses(cfg procs.Config, clients int) (*Processes, error) {
	c := procs.New(cfg)
	if err := c.Start(); err != nil {
		c.Stop()
		return nil, err
	}
	p := &Processes{Cluster: c}
	for i := range clients {
		p.clients = append(p.clients, fmt.Sprintf("127.0.0.%d", 100+i))
	}
	return p, nil
}

// Name says "processes".
func (p *Processes) Name() string { return "processes" }

// Endpoints are the nodes' addresses.
func (p *Processes) Endpoints() []string { return p.Addrs() }

// FaultAddrs are the nodes' IPs.
func (p *Processes) FaultAddrs() []string { return p.IPs() }

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

// States fetches every running node's /debug/state.
func (p *Processes) States(ctx context.Context) (map[string]State, error) {
	out := map[string]State{}
	for i, n := range p.Nodes {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := p.State(ctx, i)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.ID, err)
		}
		out[n.ID] = State{Index: st.Index, Hash: st.Hash}
	}
	return out, nil
}

// Journals reads every node's journal.
func (p *Processes) Journals() (map[string][]history.Entry, error) {
	out := map[string][]history.Entry{}
	for _, n := range p.Nodes {
		entries, _, err := history.LoadJournal(n.Journal)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.ID, err)
		}
		out[n.ID] = entries
	}
	return out, nil
}

// Logs lists the node logs.
func (p *Processes) Logs() []string {
	var out []string
	for _, n := range p.Nodes {
		out = append(out, n.Log)
	}
	return out
}

// Close removes network faults and stops the nodes.
func (p *Processes) Close() {
	if p.fw != nil {
		_ = p.fw.Close(context.Background())
	}
	p.Stop()
}
