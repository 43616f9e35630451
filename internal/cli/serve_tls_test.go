package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The shared console over TLS answers the names its certificate is for,
// and refuses a certificate it cannot read with the file names.
func TestServeTLSCertificate(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"keyholder.example"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.5")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	cert, key := filepath.Join(dir, "console.crt"), filepath.Join(dir, "console.key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	leaf, err := loadConsoleCert(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	got := allowedHosts(&net.TCPAddr{IP: net.IPv4zero, Port: 8420}, leaf)
	for _, want := range []string{"0.0.0.0:8420", "keyholder.example:8420", "10.0.0.5:8420"} {
		if !slices.Contains(got, want) {
			t.Errorf("allowed hosts %v lack %s", got, want)
		}
	}
	if slices.Contains(got, "keyholder.example") {
		t.Errorf("allowed hosts %v on port 8420 take a name without its port", got)
	}
	// On port 443 browsers leave the port out of Host.
	got = allowedHosts(&net.TCPAddr{IP: net.IPv4zero, Port: 443}, leaf)
	for _, want := range []string{"keyholder.example:443", "keyholder.example", "10.0.0.5"} {
		if !slices.Contains(got, want) {
			t.Errorf("allowed hosts %v on port 443 lack %s", got, want)
		}
	}
	if got := allowedHosts(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil); len(got) != 1 {
		t.Errorf("without TLS: %v", got)
	}
	if _, err := loadConsoleCert(cert, cert); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Errorf("a certificate given as key: %v", err)
	}
}
