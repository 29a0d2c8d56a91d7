package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"time"
)

// TLS protects the one port. With TLS on, every connection is TLS: API
// callers and other nodes alike; plain-text connections fail the handshake.
// Raft streams and the node-to-node API need a node certificate (mutual
// TLS); API callers may present a client certificate.
type TLS struct {
	// CertFile and KeyFile are this node's certificate and key (PEM). The
	// certificate serves the port and is this node's client certificate
	// towards other nodes, so it needs both the serverAuth and the
	// clientAuth extended key usage and the node's advertised host in its
	// names.
	CertFile, KeyFile string
	// CAFile is the CA bundle (PEM) that signs node certificates. A peer
	// must present a certificate from it with the serverAuth usage.
	CAFile string
	// ClientCAFile is the CA bundle for API callers' certificates.
	// Default: CAFile.
	ClientCAFile string
	// ClientAuth is what API callers must show: "none", "verify-if-given"
	// (default) or "require".
	ClientAuth string
}

// ALPN protocol ids: Raft streams announce themselves with raftALPN, so the
// port can route a TLS connection before decrypting it.
const raftALPN = "raftlock-raft/1"

var errNotPeer = errors.New("the peer certificate is not a node certificate of this cluster")

func (t *TLS) validate() error {
	if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
		return fmt.Errorf("--tls-cert, --tls-key and --tls-ca go together")
	}
	switch t.ClientAuth {
	case "", "none", "verify-if-given", "require":
	default:
		return fmt.Errorf("--tls-client-auth %q is not none, verify-if-given or require", t.ClientAuth)
	}
	return nil
}

// tlsMaterial is one loaded generation of the files; Reload swaps it.
type tlsMaterial struct {
	cert     *tls.Certificate
	peerCAs  *x509.CertPool
	clientCA *x509.CertPool
	both     *x509.CertPool // peers and clients: who may open an API connection
}

// tlsState serves configurations from the current material.
type tlsState struct {
	files TLS
	cur   atomic.Pointer[tlsMaterial]
}

func newTLSState(files TLS) (*tlsState, error) {
	s := &tlsState{files: files}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

func readPool(path string) (*x509.CertPool, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, b, nil
}

// reload reads the certificate, key and CAs again; on any error the old
// material stays in use.
func (s *tlsState) reload() error {
	cert, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	peer, peerPEM, err := readPool(s.files.CAFile)
	if err != nil {
		return fmt.Errorf("--tls-ca: %w", err)
	}
	client, clientPEM := peer, peerPEM
	if s.files.ClientCAFile != "" {
		if client, clientPEM, err = readPool(s.files.ClientCAFile); err != nil {
			return fmt.Errorf("--tls-client-ca: %w", err)
		}
	}
	both := x509.NewCertPool()
	both.AppendCertsFromPEM(peerPEM)
	both.AppendCertsFromPEM(clientPEM)
	s.cur.Store(&tlsMaterial{cert: &cert, peerCAs: peer, clientCA: client, both: both})
	return nil
}

// raftServer is the configuration of an accepted Raft stream: a node
// certificate is required.
func (s *tlsState) raftServer() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{raftALPN},
		ClientAuth: tls.RequestClientCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.cur.Load()
			return &tls.Config{
				MinVersion: tls.VersionTLS12, NextProtos: []string{raftALPN},
				Certificates: []tls.Certificate{*m.cert},
				ClientAuth:   tls.RequireAnyClientCert,
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
					return verifyPeer(raw, m.peerCAs)
				},
			}, nil
		},
	}
}

// apiServer is the configuration of an API connection: client
// certificates per ClientAuth, node certificates always accepted (nodes
// forward to each other over it).
func (s *tlsState) apiServer() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.cur.Load()
			c := &tls.Config{
				MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"},
				Certificates: []tls.Certificate{*m.cert}, ClientCAs: m.both,
			}
			switch s.files.ClientAuth {
			case "none":
				// Still ask: a forwarding node shows its certificate here
				// (verified by isPeerState); callers may send none.
				c.ClientAuth = tls.RequestClientCert
			case "require":
				c.ClientAuth = tls.RequireAndVerifyClientCert
			default:
				c.ClientAuth = tls.VerifyClientCertIfGiven
			}
			return c, nil
		},
	}
}

// peerClient is the configuration this node dials the node at host with.
func (s *tlsState) peerClient(host string, alpn ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: alpn,
		ServerName: host,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
		// The server is verified below against the current CA pool (a
		// static RootCAs could not follow a reload).
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			m := s.cur.Load()
			var raw [][]byte
			for _, c := range cs.PeerCertificates {
				raw = append(raw, c.Raw)
			}
			if err := verifyPeer(raw, m.peerCAs); err != nil {
				return err
			}
			// Not cs.ServerName: TLS sends no server name for an IP address.
			return cs.PeerCertificates[0].VerifyHostname(host)
		},
	}
}

// verifyPeer checks that a chain is a node certificate: it verifies
// against the node CA for server auth (client certificates of API callers
// carry only the clientAuth usage and are refused).
func verifyPeer(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return fmt.Errorf("%w: none presented", errNotPeer)
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("%w: %v", errNotPeer, err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("%w: %v", errNotPeer, err)
	}
	return nil
}

// isPeerState reports whether a TLS connection's client presented a node
// certificate.
func (s *tlsState) isPeerState(cs *tls.ConnectionState) bool {
	if cs == nil {
		return false
	}
	var raw [][]byte
	for _, c := range cs.PeerCertificates {
		raw = append(raw, c.Raw)
	}
	return verifyPeer(raw, s.cur.Load().peerCAs) == nil
}

// helloALPN reads a TLS ClientHello from r and returns the protocols it
// offers (ALPN). It is a cmux matcher's helper: it parses the hello with
// crypto/tls itself and stops the handshake right after.
func helloALPN(r io.Reader) ([]string, bool) {
	var protos []string
	seen := false
	stop := errors.New("stop")
	conn := tls.Server(&readOnlyConn{r: r}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			protos, seen = slices.Clone(h.SupportedProtos), true
			return nil, stop
		},
	})
	_ = conn.Handshake()
	return protos, seen
}

// readOnlyConn feeds a TLS handshake from a reader and swallows its writes.
type readOnlyConn struct {
	r io.Reader
}

func (c *readOnlyConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *readOnlyConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *readOnlyConn) Close() error                       { return nil }
func (c *readOnlyConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *readOnlyConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *readOnlyConn) SetDeadline(t time.Time) error      { return nil }
func (c *readOnlyConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *readOnlyConn) SetWriteDeadline(t time.Time) error { return nil }

// dialPeer opens a TLS connection to the node at addr.
func (s *tlsState) dialPeer(ctx context.Context, dial Dialer, addr string, alpn ...string) (*tls.Conn, error) {
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		raw.Close()
		return nil, err
	}
	tc := tls.Client(raw, s.peerClient(host, alpn...))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}
