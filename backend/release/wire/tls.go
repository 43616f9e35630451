package wire

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrPinMismatch means the release API presented a certificate whose public
// key is not the pinned one.
var ErrPinMismatch = errors.New("release API certificate does not match the pinned key")

// SPKIPin returns the hex SHA-256 of a certificate's SubjectPublicKeyInfo,
// the value image manifests carry and Settings shows.
func SPKIPin(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(h[:])
}

// ParsePin reads an SPKI SHA-256 pin written as 64 hex digits (as Settings
// shows it) or as standard base64 (as the LUKS2 token and HPKP-style pins
// carry it).
func ParsePin(pin string) ([]byte, error) {
	pin = strings.TrimSpace(pin)
	if b, err := hex.DecodeString(strings.ToLower(pin)); err == nil && len(b) == sha256.Size {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(pin); err == nil && len(b) == sha256.Size {
		return b, nil
	}
	return nil, fmt.Errorf("pin must be the SHA-256 of the certificate's public key, as 64 hex digits or base64")
}

// PinnedTLSConfig returns a TLS 1.3 client configuration that trusts exactly
// the server key whose SPKI SHA-256 is pin (see ParsePin), whatever names or
// issuer its certificate carries.
func PinnedTLSConfig(pin string) (*tls.Config, error) {
	want, err := ParsePin(pin)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain is not checked against any CA: the pin below replaces it.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrPinMismatch
			}
			got := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return ErrPinMismatch
			}
			return nil
		},
	}, nil
}
