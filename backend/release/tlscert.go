package release

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"keyholder/backend/release/wire"
)

// Files of the release listener's TLS identity in the data directory.
const (
	TLSCertFile = "release-tls.crt"
	TLSKeyFile  = "release-tls.key"
)

// TLSIdentity is the release listener's certificate and its pin.
type TLSIdentity struct {
	Cert tls.Certificate
	// Pin is the hex SHA-256 of the certificate's SubjectPublicKeyInfo; guests
	// trust the listener by this value (it goes into image manifests).
	Pin string
}

// LoadOrCreateTLS loads the release listener's certificate from dir, making
// a self-signed ECDSA P-256 one on first use.
//
// The private key is the TLS key of the listener, not a disk key: it is kept
// in dir with mode 0600 so the listener can start unattended, is never
// logged, and a stolen copy lets an attacker impersonate the listener but not
// obtain a secret (secrets travel HPKE-sealed to keys bound into SNP
// reports). Replacing it changes the pin, which every image manifest carries.
func LoadOrCreateTLS(dir string, now time.Time) (*TLSIdentity, error) {
	certPath, keyPath := filepath.Join(dir, TLSCertFile), filepath.Join(dir, TLSKeyFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		if cert, err = createTLS(certPath, keyPath, now); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("load release TLS certificate from %s: %v", dir, sanitizeTLSError(err))
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse release TLS certificate: %w", err)
	}
	cert.Leaf = leaf
	return &TLSIdentity{Cert: cert, Pin: wire.SPKIPin(leaf)}, nil
}

// sanitizeTLSError keeps only a generic message: tls's errors about a key
// file may quote its first bytes.
func sanitizeTLSError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Error()
	}
	return "certificate or key file is malformed or they do not match"
}

func createTLS(certPath, keyPath string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make release TLS key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Keyholder release API"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"keyholder-release"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make release TLS certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("encode release TLS key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return tls.Certificate{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	clear(pkcs8)
	// The key first, created exclusively, so two consoles racing cannot mix
	// one's key with the other's certificate.
	if err := writeExclusive(keyPath, keyPEM, 0o600); err != nil {
		clear(keyPEM)
		return tls.Certificate{}, fmt.Errorf("write release TLS key: %w", err)
	}
	if err := writeExclusive(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		clear(keyPEM)
		return tls.Certificate{}, fmt.Errorf("write release TLS certificate: %w", err)
	}
	clear(keyPEM)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func writeExclusive(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ServerTLSConfig is the release listener's TLS configuration: TLS 1.3 only.
func (id *TLSIdentity) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
	}
}
