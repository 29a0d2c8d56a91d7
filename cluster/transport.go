package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/soheilhy/cmux"
)

// raftMarker is the first byte of every Raft connection. An HTTP/1.1
// request starts with a method name and an h2c connection with "PRI", so
// the byte cannot be mistaken for either.
const raftMarker byte = 0x01

// matchTimeout bounds how long the port waits for a new connection's first
// bytes before deciding where it goes.
const matchTimeout = 10 * time.Second

// port splits one listener into the Raft stream and the HTTP server.
type port struct {
	root net.Listener
	mux  cmux.CMux
	raft net.Listener
	http net.Listener
	done chan struct{}
}

// newPort splits root. Without TLS a Raft stream starts with raftMarker
// and everything else is HTTP. With TLS every connection starts with a TLS
// ClientHello: Raft streams offer the ALPN protocol raftALPN, and each side
// terminates TLS with its own configuration (Raft requires a node
// certificate); a plain-text connection then fails the API's handshake.
func newPort(root net.Listener, t *tlsState) *port {
	m := cmux.New(root)
	m.SetReadTimeout(matchTimeout)
	p := &port{root: root, mux: m, done: make(chan struct{})}
	// Closing a cmux child listener closes the root; the children handed out
	// only stop accepting, and close() closes the root once, at the end.
	if t == nil {
		p.raft = newChildListener(m.Match(func(r io.Reader) bool {
			var b [1]byte
			n, _ := io.ReadFull(r, b[:])
			return n == 1 && b[0] == raftMarker
		}))
		p.http = newChildListener(m.Match(cmux.Any()))
		return p
	}
	p.raft = tls.NewListener(newChildListener(m.Match(func(r io.Reader) bool {
		protos, ok := helloALPN(r)
		return ok && slices.Contains(protos, raftALPN)
	})), t.raftServer())
	p.http = tls.NewListener(newChildListener(m.Match(cmux.Any())), t.apiServer())
	return p
}

func (p *port) serve() {
	defer close(p.done)
	_ = p.mux.Serve()
}

func (p *port) close() {
	_ = p.root.Close()
	p.mux.Close()
	<-p.done
}

// childListener wraps a cmux listener so that Close stops only this
// listener (closing a cmux child would close the root): one goroutine pumps
// accepted connections until the child is closed or the root fails.
type childListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	fail  chan struct{} // closed when the root stops accepting
	err   error         // set before fail is closed
}

func newChildListener(inner net.Listener) *childListener {
	l := &childListener{addr: inner.Addr(), conns: make(chan net.Conn), done: make(chan struct{}), fail: make(chan struct{})}
	go func() {
		for {
			c, err := inner.Accept()
			if err != nil {
				l.err = err
				close(l.fail)
				return
			}
			select {
			case l.conns <- c:
			case <-l.done:
				c.Close()
			}
		}
	}()
	return l
}

func (l *childListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.fail:
		return nil, l.err
	}
}

func (l *childListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *childListener) Addr() net.Addr { return l.addr }

// Limits of incoming Raft streams.
const (
	// handshakeTimeout bounds a new Raft stream's TLS handshake and marker
	// byte: a connection that stalls longer is closed.
	handshakeTimeout = 3 * time.Second
	// maxHandshakes is the most Raft streams in their handshake at once.
	// Past it the port stops accepting new ones until a slot frees, which
	// happens within handshakeTimeout: stalled handshakes can delay a real
	// peer by at most that long, whatever their number.
	maxHandshakes = 256
)

// streamLayer is Raft's view of the port: it accepts connections that
// announced themselves with raftMarker (over TLS, after the handshake with
// a node certificate) and dials other nodes with it. Handshakes run
// concurrently, off the accept path, each under handshakeTimeout, so
// connections that stall their handshake cannot queue real peers behind
// them.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	dial      Dialer
	tls       *tlsState // nil: plain text

	conns  chan net.Conn // streams that passed their handshake
	slots  chan struct{} // one token per handshake in progress
	done   chan struct{} // closed by Close
	once   sync.Once
	failed chan struct{} // closed when ln stops accepting
	err    error         // set before failed is closed
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(ln net.Listener, cfg Config, t *tlsState) *streamLayer {
	s := &streamLayer{
		ln: ln, advertise: advertiseAddr(cfg.Advertise), dial: cfg.Dialer, tls: t,
		conns: make(chan net.Conn), slots: make(chan struct{}, maxHandshakes),
		done: make(chan struct{}), failed: make(chan struct{}),
	}
	go s.acceptLoop()
	return s
}

// acceptLoop takes connections from the port and hands each to a
// handshake of its own.
func (s *streamLayer) acceptLoop() {
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			return
		}
		c, err := s.ln.Accept()
		if err != nil {
			s.err = err
			close(s.failed)
			return
		}
		go func() {
			defer func() { <-s.slots }()
			if !s.handshake(c) {
				_ = c.Close()
				return
			}
			select {
			case s.conns <- c:
			case <-s.done:
				_ = c.Close()
			}
		}()
	}
}

// handshake completes TLS (if on) and reads the marker byte, within
// handshakeTimeout. cmux replays the bytes it sniffed, so the marker is
// read (and checked) here.
func (s *streamLayer) handshake(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return false
		}
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != raftMarker {
		return false
	}
	_ = c.SetDeadline(time.Time{})
	return true
}

// Accept returns the next Raft stream that passed its handshake.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	case <-s.failed:
		return nil, s.err
	}
}

// Close stops accepting Raft streams.
func (s *streamLayer) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.ln.Close()
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

// refusedPatience is how long Dial keeps retrying a peer that refuses
// connections (its process is down) before it reports the failure.
// hashicorp/raft backs off exponentially per failed RPC (10 ms doubling up
// to about 41 s), so a dead peer that fails fast piles up failures and,
// once restarted, may wait tens of seconds to be replicated to. Failing
// slowly keeps the count, and so the back-off, small.
const refusedPatience = 2 * time.Second

// Dial connects to another node's port and announces a Raft stream.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	patience := time.Now().Add(min(timeout, refusedPatience))
	var c net.Conn
	var err error
	for {
		if s.tls != nil {
			c, err = s.tls.dialPeer(ctx, s.dial, string(address), raftALPN)
		} else {
			c, err = s.dial(ctx, "tcp", string(address))
		}
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(patience) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{raftMarker}); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}

// advertiseAddr is a net.Addr for a host:port string that may be a name.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }
