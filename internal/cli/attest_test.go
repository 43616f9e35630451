package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/images"
	"keyholder/backend/sim"
	"keyholder/backend/sim/simtpm"
	"keyholder/backend/store"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func pemOf(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }

// snpguestFiles writes a report and its certificates the way snpguest does.
func snpguestFiles(t *testing.T, p attest.Product, o sim.ReportOptions) (dir, report string) {
	t.Helper()
	c, err := sim.NewChip(p, "cli-host")
	if err != nil {
		t.Fatal(err)
	}
	o.Certs = sim.CertFields
	ev, err := c.Evidence(o)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	report = writeFile(t, filepath.Join(dir, "report.bin"), ev.Report)
	certs := filepath.Join(dir, "certs")
	os.Mkdir(certs, 0o700)
	writeFile(t, filepath.Join(certs, "vcek.pem"), pemOf(ev.VCEK))
	writeFile(t, filepath.Join(certs, "ask.pem"), pemOf(ev.ASK))
	writeFile(t, filepath.Join(certs, "ark.der"), ev.ARK)
	return dir, report
}

func TestAttestVerifyCLI(t *testing.T) {
	var rd [64]byte
	rd[63] = 0xAB
	dir, report := snpguestFiles(t, attest.Genoa, sim.ReportOptions{ReportData: rd})
	data := t.TempDir()
	certs := filepath.Join(dir, "certs")
	goodRef := writeFile(t, filepath.Join(dir, "ref.json"), []byte(`{"measurements":["`+hex.EncodeToString(sim.DemoMeasurement)+`"],"minimum_tcb":{"bootloader":9,"tee":0,"snp":23,"microcode":84}}`))
	otherRef := writeFile(t, filepath.Join(dir, "other.json"), []byte(`{"measurements":["`+strings.Repeat("ab", 48)+`"],"minimum_tcb":{}}`))
	base := func(more ...string) []string {
		return append([]string{"attest", "verify", "--data", data, "--report", report, "--certs", certs}, more...)
	}
	dev := func(more ...string) []string {
		return base(append([]string{"--dev-trust-simulated-amd-root"}, more...)...)
	}

	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // substrings of stdout
	}{
		{"authenticity only", dev("--json"), 0, []string{`"verified": true`, `"simulated": true`, `"product": "Genoa"`, `"signer": "VCEK"`, `"reference_not_checked"`}},
		{"with reference and report data", dev("--reference", goodRef, "--report-data", hex.EncodeToString(rd[:]), "--product", "genoa"), 0, []string{"VERIFIED (SIMULATED", "measurement   " + hex.EncodeToString(sim.DemoMeasurement)}},
		{"simulated root not trusted", base("--json"), 1, []string{`"verified": false`, `"chain_mismatch"`}},
		{"measurement not approved", dev("--reference", otherRef, "--json"), 1, []string{`"measurement_not_approved"`}},
		{"report data mismatch", dev("--report-data", strings.Repeat("00", 64), "--json"), 1, []string{`"report_data_mismatch"`}},
		{"wrong product", dev("--product", "Milan", "--json"), 1, []string{`"wrong_product"`}},
		{"expired at --at", dev("--at", "2040-01-01T00:00:00Z", "--json"), 1, []string{`"certificate_expired"`}},
		{"not yet valid at --at", dev("--at", "2020-01-01T00:00:00Z", "--json"), 1, []string{`"certificate_not_yet_valid"`}},
		{"no CRL, stale-CRL policy warn", dev("--stale-crl", "warn", "--json"), 0, []string{`"verified": true`, `"revocation_not_checked"`}},
		{"no CRL, stale-CRL policy refuse", dev("--stale-crl", "refuse", "--json"), 1, []string{`"verified": false`, `"revocation_not_checked"`, "policy refuses"}},
		{"unknown stale-CRL policy", dev("--stale-crl", "ignore"), 2, nil},
		{"chip identity is the VCEK hardware ID", dev(), 0, []string{"chip identity " + hex.EncodeToString(mustChipID(t, attest.Genoa))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}

	// The JSON object carries the fields the issue names, hex in lower case.
	_, out, _ := runCLI(t, dev("--json")...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"verified", "simulated", "product", "signer", "measurement", "chip_id", "report_data", "policy", "reported_tcb", "current_tcb", "reasons"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if s := m["chip_id"].(string); s != strings.ToLower(s) || len(s) != 128 {
		t.Errorf("chip_id %q", s)
	}
}

// TestAttestVerifyCLICertChain reads AMD's cert_chain bundle (ASK then ARK
// in PEM) and a DER VCEK, as `snpguest fetch` writes them.
func TestAttestVerifyCLICertChain(t *testing.T) {
	var rd [64]byte
	c, _ := sim.NewChip(attest.Milan, "chain-host")
	ev, err := c.Evidence(sim.ReportOptions{ReportData: rd, Certs: sim.CertFields})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	report := writeFile(t, filepath.Join(dir, "report.bin"), ev.Report)
	certs := filepath.Join(dir, "certs")
	os.Mkdir(certs, 0o700)
	writeFile(t, filepath.Join(certs, "cert_chain.pem"), sim.Root().CertChainPEM(attest.Milan))
	writeFile(t, filepath.Join(certs, "vcek.der"), ev.VCEK)
	writeFile(t, filepath.Join(certs, "notes.txt"), []byte("ignored"))
	code, out, errOut := runCLI(t, "attest", "verify", "--data", t.TempDir(), "--report", report, "--certs", certs,
		"--dev-trust-simulated-amd-root", "--report-data", hex.EncodeToString(rd[:]))
	if code != 0 || !strings.Contains(out, "VERIFIED") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestAttestVerifyCLIBadFiles(t *testing.T) {
	dir, report := snpguestFiles(t, attest.Milan, sim.ReportOptions{})
	raw, _ := os.ReadFile(report)
	certs := filepath.Join(dir, "certs")
	vcek, _ := os.ReadFile(filepath.Join(certs, "vcek.pem"))
	badDir := func(name string, b []byte) string {
		d := t.TempDir()
		writeFile(t, filepath.Join(d, name), b)
		return d
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"truncated report", []string{"--report", writeFile(t, filepath.Join(dir, "short.bin"), raw[:1000])}, "short.bin: 1000 bytes, an SEV-SNP report is 1184"},
		{"oversized report", []string{"--report", writeFile(t, filepath.Join(dir, "long.bin"), append(raw, 0))}, "long.bin: larger than the 1184 bytes"},
		{"garbage report", []string{"--report", writeFile(t, filepath.Join(dir, "garbage.bin"), bytes.Repeat([]byte{0xff}, 1184))}, "garbage.bin: "},
		{"missing report", []string{"--report", filepath.Join(dir, "nope.bin")}, "nope.bin"},
		{"garbage certificate", []string{"--report", report, "--vcek", writeFile(t, filepath.Join(dir, "junk.der"), []byte("junk"))}, "junk.der: not a PEM file and not an AMD DER certificate"},
		{"wrong PEM type", []string{"--report", report, "--vcek", writeFile(t, filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}))}, `key.pem: PEM block of type "PRIVATE KEY", want CERTIFICATE`},
		{"truncated PEM", []string{"--report", report, "--certs", badDir("vcek.pem", vcek[:len(vcek)/2])}, "vcek.pem: broken PEM"},
		{"empty certificate directory", []string{"--report", report, "--certs", t.TempDir()}, "no certificate files"},
		{"bad --at", []string{"--report", report, "--at", "yesterday"}, "--at \"yesterday\": want RFC 3339"},
		{"bad --report-data", []string{"--report", report, "--report-data", "abc"}, "--report-data: not hex"},
		{"short --report-data", []string{"--report", report, "--report-data", "abcd"}, "--report-data: 2 bytes, want 64"},
		{"bad reference", []string{"--report", report, "--reference", writeFile(t, filepath.Join(dir, "ref.json"), []byte(`{"measurements":[]}`))}, "ref.json: reference values: reference values need at least one approved measurement"},
		{"unknown product", []string{"--report", report, "--product", "Naples"}, `unknown product "Naples"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"attest", "verify", "--data", t.TempDir()}, tc.args...)...)
			if code == 0 {
				t.Fatalf("exit 0\n%s", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr %q lacks %q", errOut, tc.want)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") > 1 || strings.Contains(errOut, "goroutine") {
				t.Fatalf("not a one-line error: %q", errOut)
			}
		})
	}
}

func TestAttestFetchCertsAndCache(t *testing.T) {
	dir, report := snpguestFiles(t, attest.Turin, sim.ReportOptions{})
	data := t.TempDir()
	crl, err := sim.Root().CRL(attest.Turin, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(dir, "certs")
	writeFile(t, filepath.Join(certs, "crl.der"), crl)
	code, out, errOut := runCLI(t, "attest", "fetch-certs", "--data", data, "--from", certs, "--dev-trust-simulated-amd-root")
	if code != 0 {
		t.Fatalf("fetch-certs --from: exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(out, "cached Turin VCEK") || !strings.Contains(out, "cached Turin CRL") {
		t.Fatalf("output %q", out)
	}
	// The report alone now verifies from the cache, with revocation checked.
	code, out, errOut = runCLI(t, "attest", "verify", "--data", data, "--report", report, "--dev-trust-simulated-amd-root", "--json")
	if code != 0 || !strings.Contains(out, `"revocation_checked": true`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	// A CRL the simulated root did not sign is refused without the dev flag.
	code, _, errOut = runCLI(t, "attest", "fetch-certs", "--data", data, "--from", certs)
	if code == 0 || !strings.Contains(errOut, "CRL is not signed by a trusted AMD root") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestAttestFetchCertsKDS(t *testing.T) {
	c, _ := sim.NewChip(attest.Milan, "kds-host")
	tcb := sim.DefaultTCB(attest.Milan)
	vcek, _ := c.VCEKCert(tcb)
	crl, _ := sim.Root().CRL(attest.Milan, time.Now().Add(-time.Hour))
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		switch {
		case r.URL.Path == "/vcek/v1/Milan/cert_chain":
			w.Write(sim.Root().CertChainPEM(attest.Milan))
		case r.URL.Path == "/vcek/v1/Milan/crl":
			w.Write(crl)
		case strings.HasPrefix(r.URL.Path, "/vcek/v1/Milan/"+hex.EncodeToString(c.ID())):
			w.Write(vcek)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	data := t.TempDir()
	code, out, errOut := runCLI(t, "attest", "fetch-certs", "--data", data, "--kds", srv.URL, "--product", "Milan",
		"--chip-id", hex.EncodeToString(c.ID()), "--tcb", hex.EncodeToString(beU64(tcb.Encode(attest.Milan))), "--dev-trust-simulated-amd-root")
	if code != 0 {
		t.Fatalf("exit %d: %s %s (paths %v)", code, out, errOut, paths)
	}
	for _, w := range []string{"cached Milan ASK", "cached Milan ARK", "cached Milan VCEK", "cached Milan CRL"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q: %s", w, out)
		}
	}
}

func beU64(v uint64) []byte {
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

func TestAttestVerifyTPMCLI(t *testing.T) {
	nonce := []byte("cli nonce 0123456789")
	att, err := simtpm.Attestation(simtpm.Options{Seed: 9, SecureBoot: true}, nonce)
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, filepath.Join(t.TempDir(), "attestation.bin"), att)
	akd := hex.EncodeToString((&attest.Evidence{TPM: att}).AKDigest())
	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"bound AK", []string{"--nonce", hex.EncodeToString(nonce), "--ak-digest", akd, "--json"}, 0, `"secure_boot": true`},
		{"wrong nonce", []string{"--nonce", "00", "--ak-digest", akd, "--json"}, 1, `"tpm_nonce_mismatch"`},
		{"AK not trusted", []string{"--nonce", hex.EncodeToString(nonce), "--json"}, 1, `"tpm_ak_not_bound"`},
		{"no Google certificate", []string{"--nonce", hex.EncodeToString(nonce), "--gce", "--json"}, 1, `"tpm_ak_untrusted"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"attest", "verify-tpm", "--attestation", file}, tc.args...)...)
			if code != tc.wantCode || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (want %d), stdout lacks %q:\n%s\n%s", code, tc.wantCode, tc.want, out, errOut)
			}
		})
	}
	code, _, errOut := runCLI(t, "attest", "verify-tpm", "--attestation", writeFile(t, filepath.Join(t.TempDir(), "bad.bin"), []byte("garbage")), "--nonce", "00")
	if code == 0 || !strings.Contains(errOut, "bad.bin: vTPM attestation") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// TestAttestVerifyCLIRealReport checks a report from real AMD hardware with
// AMD's production roots, the way an officer would.
func TestAttestVerifyCLIRealReport(t *testing.T) {
	dir := filepath.Join("..", "..", "backend", "attest", "testdata", "real-milan")
	args := []string{"attest", "verify", "--data", t.TempDir(), "--report", filepath.Join(dir, "report.bin"), "--vcek", filepath.Join(dir, "vcek.der")}
	code, out, errOut := runCLI(t, append(args, "--at", "2024-03-01T00:00:00Z", "--json")...)
	if code != 0 || !strings.Contains(out, `"simulated": false`) || !strings.Contains(out, `"product": "Milan"`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, append(args, "--at", "2029-12-01T00:00:00Z")...)
	if code != 1 || !strings.Contains(out, "refused: certificate_expired") {
		t.Fatalf("after expiry: exit %d\n%s", code, out)
	}
}

// TestAttestVerifyCLIImage applies an image's newest reference values from
// the console's database, and a CRL age limit.
func TestAttestVerifyCLIImage(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(data, "keyholder.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var imgID string
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		im, err := images.CreateTx(ctx, tx, time.Now(), "web-01", "", "alice")
		imgID = im.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	refs := attest.NewReferences(db)
	if _, err := refs.Put(ctx, imgID, &attest.ReferenceValues{Measurements: []attest.Hex{bytes.Repeat([]byte{1}, 48)}}, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := refs.Put(ctx, imgID, &attest.ReferenceValues{Measurements: []attest.Hex{bytes.Repeat([]byte{2}, 48)}}, "bob", ""); err != nil {
		t.Fatal(err)
	}
	crl, _ := sim.Root().CRL(attest.Milan, time.Now().Add(-10*24*time.Hour))
	cache := attest.NewCertCache(db)
	v, _ := attest.NewVerifier(ctx, attest.Options{Certs: cache, TrustSimulatedRoot: true, SimulatedRoots: sim.Root().TrustedRoots()})
	if _, err := v.ImportCRL(ctx, cache, crl, "test"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, report := snpguestFiles(t, attest.Milan, sim.ReportOptions{})
	args := []string{"attest", "verify", "--data", data, "--report", report, "--certs", filepath.Join(filepath.Dir(report), "certs"), "--dev-trust-simulated-amd-root"}
	code, out, errOut := runCLI(t, append(args, "--image", "web-01")...)
	if code != 1 || !strings.Contains(out, "not in the approved set of image web-01 (version 2)") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, append(args, "--json")...)
	if code != 0 || !strings.Contains(out, `"revocation_checked": true`) {
		t.Fatalf("default CRL age: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, append(args, "--json", "--crl-max-age", "24h")...)
	if code != 0 || !strings.Contains(out, `"revocation_checked": false`) || !strings.Contains(out, "revocation_not_checked") {
		t.Fatalf("1-day CRL age: exit %d\n%s", code, out)
	}
	code, _, errOut = runCLI(t, append(args, "--image", "nope")...)
	if code != 1 || !strings.Contains(errOut, `--image "nope": no such image`) {
		t.Fatalf("unknown image: exit %d %q", code, errOut)
	}
}

// TestAttestVerifyCLIEvidence checks evidence in the agents' JSON form, with
// a bound vTPM attestation.
func TestAttestVerifyCLIEvidence(t *testing.T) {
	nonce := []byte("evidence nonce")
	att, err := simtpm.Attestation(simtpm.Options{Seed: 11, SecureBoot: true}, nonce)
	if err != nil {
		t.Fatal(err)
	}
	akd := (&attest.Evidence{TPM: att}).AKDigest()
	var rd [64]byte
	copy(rd[:], akd)
	c, _ := sim.NewChip(attest.Turin, "evidence-host")
	ev, err := c.Evidence(sim.ReportOptions{ReportData: rd, VLEK: true})
	if err != nil {
		t.Fatal(err)
	}
	ev.TPM = att
	b, _ := json.Marshal(ev)
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "evidence.json"), b)
	args := []string{"attest", "verify", "--data", t.TempDir(), "--evidence", file, "--dev-trust-simulated-amd-root", "--json",
		"--report-data", hex.EncodeToString(rd[:]), "--tpm-nonce", hex.EncodeToString(nonce)}
	code, out, errOut := runCLI(t, append(args, "--ak-digest", hex.EncodeToString(akd))...)
	if code != 0 || !strings.Contains(out, `"signer": "VLEK"`) || !strings.Contains(out, `"product": "Turin"`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, args...)
	if code != 1 || !strings.Contains(out, "tpm_ak_not_bound") {
		t.Fatalf("without --ak-digest: exit %d\n%s", code, out)
	}
	bad := writeFile(t, filepath.Join(dir, "bad.json"), []byte(`{"report":"AAAA","extra":1}`))
	code, _, errOut = runCLI(t, "attest", "verify", "--data", t.TempDir(), "--evidence", bad)
	if code == 0 || !strings.Contains(errOut, "bad.json: ") || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
		t.Fatalf("bad evidence: exit %d %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "attest", "verify", "--data", t.TempDir(), "--evidence", file, "--report", file)
	if code != 2 {
		t.Fatalf("--evidence with --report: exit %d %q", code, errOut)
	}
}

// mustChipID is the VCEK hardware ID of snpguestFiles' chip.
func mustChipID(t *testing.T, p attest.Product) []byte {
	t.Helper()
	c, err := sim.NewChip(p, "cli-host") // snpguestFiles' chip
	if err != nil {
		t.Fatal(err)
	}
	return c.ID()
}
