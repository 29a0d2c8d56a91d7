package client

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSFromFiles returns the TLS configuration of a caller that trusts the
// PEM certificates in caFile (the CA that signed the nodes' certificates)
// and, when certFile or keyFile is given, presents that certificate and
// key (for nodes that verify client certificates). TLS 1.2 or later. It is
// the one place where raftlock's binaries and test harnesses turn files
// into a *tls.Config for WithTLS or an http.Transport.
//
// A file that cannot be read is reported with its path (errors.Is with
// fs.ErrNotExist works); a CA file without a PEM certificate is
// ErrInvalidArgument.
func TLSFromFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: tls ca file %s holds no PEM certificate", ErrInvalidArgument, caFile)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls certificate %q and key %q: %w", certFile, keyFile, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
