// Package certs makes development TLS material for raftlock with the Go
// standard library: a CA, node certificates (serverAuth and clientAuth, the
// node's hosts in their names) and client certificates (clientAuth only, so
// a client can never pass for a node). It backs `lockctl certs`, `make
// certs` and the tests; production deployments bring their own PKI.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Pair is a certificate and its private key, PEM-encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA valid for the given duration.
func NewCA(name string, validFor time.Duration) (*Pair, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"raftlock development"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	return issue(tmpl, nil, validFor)
}

// Node issues a node certificate for the given hosts (DNS names or IPs).
func (ca *Pair) Node(name string, hosts []string, validFor time.Duration) (*Pair, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: []string{"raftlock node"}},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return issue(tmpl, ca, validFor)
}

// Client issues a client certificate (clientAuth only).
func (ca *Pair) Client(name string, validFor time.Duration) (*Pair, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: []string{"raftlock client"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return issue(tmpl, ca, validFor)
}

func issue(tmpl *x509.Certificate, parent *Pair, validFor time.Duration) (*Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(validFor)
	signer, signCert := key, tmpl
	if parent != nil {
		signer, signCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signCert, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		cert:    cert, key: key,
	}, nil
}

// Write stores the pair as dir/name.crt and dir/name.key (the key 0600).
func (p *Pair) Write(dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), p.CertPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), p.KeyPEM, 0o600)
}

// DevSet writes a development set into dir: ca.crt/ca.key, node.crt/
// node.key valid for hosts (every node may share it), and client.crt/
// client.key.
func DevSet(dir string, hosts []string, validFor time.Duration) error {
	ca, err := NewCA("raftlock development CA", validFor)
	if err != nil {
		return err
	}
	node, err := ca.Node("raftlock node", hosts, validFor)
	if err != nil {
		return err
	}
	client, err := ca.Client("raftlock client", validFor)
	if err != nil {
		return err
	}
	for name, p := range map[string]*Pair{"ca": ca, "node": node, "client": client} {
		if err := p.Write(dir, name); err != nil {
			return err
		}
	}
	return nil
}
