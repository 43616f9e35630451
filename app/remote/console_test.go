package remote_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyholder/app"
	"keyholder/backend/custody"
	"keyholder/backend/release/wire"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// console is a real web console (app services in web mode on a real
// SQLite store, the real HTTP handler) behind TLS with its own key, on a
// fixed loopback address so that it can be killed and started again.
type console struct {
	t    *testing.T
	hub  *app.Hub
	h    http.Handler
	id   identity
	addr string
	hits atomic.Int64 // requests that reached the handler

	mu  sync.Mutex
	srv *http.Server
}

func newConsole(t *testing.T) *console {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	db := storetest.Open(t, store.Options{})
	hub := app.NewHub()
	svcs := app.New(ctx, app.Config{Version: "test", Mode: "web",
		CustodyOptions: custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}}}, db, hub)
	h, err := app.NewHandler(svcs, app.HandlerOptions{Hub: hub, AnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &console{t: t, hub: hub, id: newIdentity(t)}
	c.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		h.ServeHTTP(w, r)
	})
	c.start()
	t.Cleanup(c.kill)
	return c
}

// url is the console's https address.
func (c *console) url() string { return "https://" + c.addr }

// start serves the console (again, on the same address after kill).
func (c *console) start() {
	c.t.Helper()
	addr := c.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	srv := app.NewServer(c.h)
	srv.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests do
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{c.id.Cert}, MinVersion: tls.VersionTLS12}))
}

// kill stops the console at once, cutting every open connection.
func (c *console) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv != nil {
		c.srv.Close()
		c.srv = nil
	}
}

// identity is the console's TLS certificate: self-signed, for 127.0.0.1
// and localhost, usable as its own CA file.
type identity struct {
	Cert tls.Certificate
	Pin  string
	PEM  []byte
}

func newIdentity(t *testing.T) identity {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "test console"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return identity{Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}, Pin: wire.SPKIPin(leaf),
		PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}
