package clustertest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/raftlock/raftlock/cluster"
)

// Network decides which node-to-node links work. Every connection a node
// opens goes through its Dialer; a cut link refuses new connections and
// breaks existing ones in both directions.
type Network struct {
	mu    sync.Mutex
	cut   map[[2]string]bool // from, to
	conns map[*conn]struct{}
}

// NewNetwork returns a network with every link up.
func NewNetwork() *Network {
	return &Network{cut: map[[2]string]bool{}, conns: map[*conn]struct{}{}}
}

// Dialer returns the dialer of the node at address from.
func (nw *Network) Dialer(from string) cluster.Dialer {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return func(ctx context.Context, network, to string) (net.Conn, error) {
		if nw.isCut(from, to) {
			return nil, fmt.Errorf("dial %s from %s: link cut by the test", to, from)
		}
		c, err := d.DialContext(ctx, network, to)
		if err != nil {
			return nil, err
		}
		w := &conn{Conn: c, nw: nw, from: from, to: to}
		nw.mu.Lock()
		nw.conns[w] = struct{}{}
		nw.mu.Unlock()
		return w, nil
	}
}

func (nw *Network) isCut(from, to string) bool {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.cut[[2]string{from, to}] || nw.cut[[2]string{to, from}]
}

// Partition cuts every link between addresses of different groups.
func (nw *Network) Partition(groups ...[]string) {
	nw.mu.Lock()
	for i, a := range groups {
		for j, b := range groups {
			if i == j {
				continue
			}
			for _, x := range a {
				for _, y := range b {
					nw.cut[[2]string{x, y}] = true
				}
			}
		}
	}
	var doomed []*conn
	for c := range nw.conns {
		if nw.cut[[2]string{c.from, c.to}] || nw.cut[[2]string{c.to, c.from}] {
			doomed = append(doomed, c)
		}
	}
	nw.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

// Heal restores every link.
func (nw *Network) Heal() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	clear(nw.cut)
}

// CloseConns breaks every connection from or to addr (a crashed node's
// peers see its connections reset).
func (nw *Network) CloseConns(addr string) {
	nw.mu.Lock()
	var doomed []*conn
	for c := range nw.conns {
		if c.from == addr || c.to == addr {
			doomed = append(doomed, c)
		}
	}
	nw.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

type conn struct {
	net.Conn
	nw       *Network
	from, to string
	once     sync.Once
}

func (c *conn) Read(p []byte) (int, error) {
	if c.nw.isCut(c.from, c.to) {
		c.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

func (c *conn) Write(p []byte) (int, error) {
	if c.nw.isCut(c.from, c.to) {
		c.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		c.nw.mu.Lock()
		delete(c.nw.conns, c)
		c.nw.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}
