package cli

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/agent/agentsim"
	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/hsm/hsmtest"
	"keyholder/backend/images"
	"keyholder/backend/release/wire"
	"keyholder/backend/sim"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// cliHelperEnv makes the test binary run the keyholder command line with
// its arguments instead of the tests, so that a test starts a real
// `keyholder serve` process and can SIGKILL it.
const cliHelperEnv = "KEYHOLDER_TEST_RUN_CLI"

// init, not TestMain (which stays free for the package's other needs):
// it runs before the testing flags are parsed.
func init() {
	if os.Getenv(cliHelperEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
}

// serveProcess is a `keyholder serve` process started from the test binary.
type serveProcess struct {
	cmd  *exec.Cmd
	url  string // release API
	pin  string // its SPKI pin
	logs *logBuffer
	out  *logBuffer // standard output
}

var consoleLine = regexp.MustCompile(`Keyholder console: https?://([^/ ]+)/`)

// officerAddr is the officer console's address as the process printed it.
func (p *serveProcess) officerAddr(t *testing.T) string {
	t.Helper()
	m := consoleLine.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("keyholder serve printed no console address: %s", p.out)
	}
	return m[1]
}

var releaseLine = regexp.MustCompile(`Release API for guests: (https://[^/ ]+)/\s+\(SPKI pin, SHA-256: ([A-Za-z0-9+/=_-]+)\)`)

// startServeProcess starts `keyholder serve args...` and waits for its release API.
func startServeProcess(t *testing.T, args ...string) *serveProcess {
	t.Helper()
	p, m := startServeUntil(t, releaseLine, args...)
	p.url, p.pin = m[1], m[2]
	return p
}

// startServeUntil starts `keyholder serve args...` and waits for a line of
// its standard output that matches until, returning the submatches.
func startServeUntil(t *testing.T, until *regexp.Regexp, args ...string) (*serveProcess, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), cliHelperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd, logs: &logBuffer{}, out: &logBuffer{}}
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			p.out.Write(append(sc.Bytes(), '\n'))
			if m := until.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m
				sent = true
			}
		}
		close(found)
	}()
	select {
	case m, ok := <-found:
		if !ok {
			cmd.Wait()
			t.Fatalf("keyholder serve stopped before printing %q: %s", until, p.logs)
		}
		return p, m
	case <-time.After(60 * time.Second):
		t.Fatalf("keyholder serve did not print %q: %s", until, p.logs)
	}
	return nil, nil
}

// kill ends the process with SIGKILL, as a lost machine would.
func (p *serveProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// logBuffer collects a process's standard error while the test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReplicaRestartUnsealsThroughSoftHSM2 is the proof that a replica
// needs no officer after a restart: a `keyholder serve` process with
// auto-unseal set up on a real SoftHSM2 token is killed with SIGKILL and
// started again; the new process serves a guest's routine release over the
// pinned TLS release API although no officer logged in to it, and its
// audit log says the token unlocked it. Started without the token's PIN,
// the same console stays locked and answers the guest "unavailable", so
// it is the token that unlocks it.
func TestReplicaRestartUnsealsThroughSoftHSM2(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { replicaRestart(t, "") })
	t.Run("postgres", func(t *testing.T) { replicaRestart(t, storetest.NewDatabase(t, storetest.Server(t))) })
}

// replicaRestart runs TestReplicaRestartUnsealsThroughSoftHSM2 on the
// store at database ("": the SQLite file of the data directory).
func replicaRestart(t *testing.T, database string) {
	ctx := context.Background()
	module := hsmtest.Token(t, "kh-replica", "pin-7531")
	root := t.TempDir()
	data := filepath.Join(root, "data")
	alice := secretFile(t, root, "alice", "alice's passphrase one")
	pin := secretFile(t, root, "pin", "pin-7531")
	var l cliLog
	// in appends the store's flags to a command line.
	in := func(args ...string) []string {
		args = append(args, "--data", data)
		if database != "" {
			args = append(args, "--database", database)
		}
		return args
	}
	l.run(t, 0, in("init", "--officer", "alice", "--passphrase-file", alice)...)
	l.run(t, 0, in("unseal", "setup", "--officer", "alice", "--passphrase-file", alice,
		"--pkcs11-module", module, "--token-label", "kh-replica", "--pin-file", pin)...)

	// An image with reference values and a volume for one guest, made by
	// an officer before the console runs.
	location := database
	if location == "" {
		location = filepath.Join(data, "keyholder.db")
	}
	db, err := store.Open(ctx, location, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cust := custody.New(db, testConfig.Custody)
	if _, err := cust.Unlock(ctx, "alice", []byte("alice's passphrase one")); err != nil {
		t.Fatal(err)
	}
	var im images.Image
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		im, err = images.CreateTx(ctx, tx, time.Now(), "web", "", "officer:alice")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewReferences(db).Put(ctx, im.ID, &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}}, "officer:alice", "replica test"); err != nil {
		t.Fatal(err)
	}
	vol, gen, secret, err := cust.CreateVolume(ctx, "officer:alice", im.ID, "web-data")
	if err != nil {
		t.Fatal(err)
	}
	defer clear(secret)
	cust.Close(ctx)
	db.Close()

	serveArgs := func(extra ...string) []string {
		return append(in("--listen", "127.0.0.1:0", "--release-listen", "127.0.0.1:0", "--dev-trust-simulated-amd-root"), extra...)
	}
	withToken := serveArgs("--pkcs11-module", module, "--pin-file", pin)
	g, err := agentsim.NewGuest(attest.Genoa, "chip-replica")
	if err != nil {
		t.Fatal(err)
	}
	obtain := func(p *serveProcess, r agent.Request) (*agent.Result, error) {
		t.Helper()
		c, err := agent.NewClient(p.url, p.pin)
		if err != nil {
			t.Fatal(err)
		}
		g.NewLaunch()
		octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return c.Obtain(octx, g, r)
	}

	// First run: the guest's first boot waits for an officer, who
	// approves it from the command line beside the running console.
	first := startServeProcess(t, withToken...)
	approved := map[string]bool{}
	res, err := obtain(first, agent.Request{VMID: "vm-web-1", VolumeID: vol, Generation: gen, PollEvery: 20 * time.Millisecond,
		Waiting: func(rel *wire.Release) {
			if !approved[rel.RequestID] {
				approved[rel.RequestID] = true
				l.run(t, 0, in("requests", "approve", rel.RequestID, "--officer", "alice", "--passphrase-file", alice)...)
			}
		}})
	if err != nil || res.Class != "first_boot" || string(res.Secret) != string(secret) {
		t.Fatalf("first boot: %+v %v\n%s", res, err, first.logs)
	}
	res.Wipe()
	first.kill(t)

	noOfficer := agent.Request{VMID: "vm-web-1", VolumeID: vol, Generation: gen, PollEvery: 20 * time.Millisecond,
		Waiting: func(rel *wire.Release) { t.Errorf("a reboot after the restart waited for an officer (%s)", rel.Class) }}

	// Restarted without the token's PIN: locked, the guest is told the
	// console cannot release now, and the log says why.
	locked := startServeProcess(t, serveArgs("--pkcs11-module", module)...)
	var lastErr error
	lockedReq := noOfficer
	lctx, lcancel := context.WithCancel(ctx)
	lockedReq.Retrying = func(err error) { lastErr = err; lcancel() }
	c, err := agent.NewClient(locked.url, locked.pin)
	if err != nil {
		t.Fatal(err)
	}
	g.NewLaunch()
	if res, err := c.Obtain(lctx, g, lockedReq); err == nil {
		res.Wipe()
		t.Fatal("a console restarted without its token's PIN released a key")
	}
	lcancel()
	if agent.Code(lastErr) != wire.CodeUnavailable || !strings.Contains(locked.logs.String(), "no token PIN given") {
		t.Fatalf("locked restart: agent saw %v; log:\n%s", lastErr, locked.logs)
	}
	locked.kill(t)

	// Restarted with the token: no officer logs in, the reboot is served.
	again := startServeProcess(t, withToken...)
	res, err = obtain(again, noOfficer)
	if err != nil {
		t.Fatalf("reboot after the restart: %v\n%s", err, again.logs)
	}
	if res.Class != "routine_boot" || string(res.Secret) != string(secret) {
		t.Fatalf("reboot after the restart: class %s, secret matches %v", res.Class, string(res.Secret) == string(secret))
	}
	res.Wipe()
	again.kill(t)

	// The audit log: the token unlocked the restarted console (twice
	// with the token, once refused without it), and the log verifies.
	export := l.run(t, 0, in("audit", "export", "--json")...)
	if n := strings.Count(export, `"system:auto-unseal"`); n < 2 {
		t.Fatalf("audit log shows %d auto-unseals, want the two starts with the token:\n%s", n, export)
	}
	l.run(t, 0, in("audit", "verify")...)
	if strings.Contains(first.logs.String()+locked.logs.String()+again.logs.String()+l.out.String(), "pin-7531") {
		t.Fatal("the token PIN appears in a log")
	}
}

// TestServePrintsOfficerConsolePin: keyholder serve with --tls-cert prints
// the SPKI pin of the officer console's certificate, and a client pinning
// exactly that key (as the desktop app's "Connect to a console" does)
// reaches the console, while a client pinning another key is refused.
func TestServePrintsOfficerConsolePin(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	alice := secretFile(t, root, "alice", "alice's passphrase one")
	var l cliLog
	l.run(t, 0, "init", "--data", data, "--officer", "alice", "--passphrase-file", alice)
	certFile, keyFile := writeSelfSigned(t, root)
	pinLine := regexp.MustCompile(`Console certificate \(SPKI pin, SHA-256\): ([0-9a-f]{64})`)
	p, m := startServeUntil(t, pinLine, "--data", data, "--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile, "--release-listen", "off")
	defer p.kill(t)
	get := func(pin string) error {
		cfg, err := wire.PinnedTLSConfig(pin)
		if err != nil {
			t.Fatal(err)
		}
		d := tls.Dialer{Config: cfg}
		c, err := d.DialContext(context.Background(), "tcp", p.officerAddr(t))
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := get(m[1]); err != nil {
		t.Fatalf("a client pinning the printed key: %v", err)
	}
	other, err := loadConsoleCert(writeSelfSigned(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := get(wire.SPKIPin(other)); err == nil {
		t.Fatal("a client pinning another key reached the console")
	}
}

// writeSelfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and
// its key (PEM) into dir.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keyholder test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "console.crt"), filepath.Join(dir, "console.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
