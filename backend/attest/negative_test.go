package attest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"

	"keyholder/backend/attest"
	"keyholder/backend/sim"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// rd is the REPORT_DATA every case expects unless it says otherwise.
var rd = func() (b [64]byte) {
	h := sha512.Sum512([]byte("test transcript"))
	copy(b[:], h[:])
	return
}()

func measurement(s string) []byte {
	h := sha512.Sum384([]byte(s))
	return h[:]
}

// goodRef approves sim.DemoMeasurement at the chip's default TCB.
func goodRef(p attest.Product) *attest.ReferenceValues {
	t := sim.DefaultTCB(p)
	return &attest.ReferenceValues{
		Measurements: []attest.Hex{sim.DemoMeasurement},
		MinimumTCB:   attest.TCBMinimum{Bootloader: t.Bootloader, TEE: t.TEE, SNP: t.SNP, Microcode: t.Microcode, FMC: t.FMC},
	}
}

type negCase struct {
	name string
	// product defaults to Milan.
	product attest.Product
	opts    func(o *sim.ReportOptions)
	mutate  func(t *testing.T, ev *attest.Evidence)
	ref     func(r *attest.ReferenceValues)
	exp     func(e *attest.Expectation)
	// cache fills the certificate cache (and reloads CRLs) before verifying.
	cache    func(t *testing.T, c *attest.CertCache, v *attest.Verifier, ev *attest.Evidence)
	wantCode attest.Code
	wantMsg  string
}

func tcbPtr(t attest.TCB) *attest.TCB { return &t }

var negCases = []negCase{
	{name: "wrong signature", mutate: func(t *testing.T, ev *attest.Evidence) { ev.Report[0x90] ^= 1 }, wantCode: attest.CodeBadSignature, wantMsg: "signature"},
	{name: "signature bytes zeroed", mutate: func(t *testing.T, ev *attest.Evidence) {
		for i := 0x2A0; i < 0x2A0+144; i++ {
			ev.Report[i] = 0
		}
	}, wantCode: attest.CodeBadSignature},
	{name: "forged chain with AMD names", mutate: forgeChain, wantCode: attest.CodeUntrustedChain, wantMsg: "not signed by a trusted AMD Milan ASK"},
	{name: "VCEK without ASK/ARK under production roots only", mutate: func(t *testing.T, ev *attest.Evidence) {
		evc := mustCerts(t, ev)
		*ev = attest.Evidence{Report: ev.Report, VCEK: evc}
	}, wantCode: attest.CodeUntrustedChain},
	{name: "broken ASK", mutate: func(t *testing.T, ev *attest.Evidence) {
		ask := append([]byte(nil), sim.Root().ASK(attest.Milan).Raw...)
		ask[len(ask)-10] ^= 0xff
		ev.CertTable, ev.VCEK, ev.ASK, ev.ARK = nil, mustCerts(t, ev), ask, sim.Root().ARK(attest.Milan).Raw
	}, wantCode: attest.CodeChainMismatch, wantMsg: "ASK"},
	{name: "swapped ASK (Genoa's)", mutate: func(t *testing.T, ev *attest.Evidence) {
		ev.CertTable, ev.VCEK, ev.ASK, ev.ARK = nil, mustCerts(t, ev), sim.Root().ASK(attest.Genoa).Raw, sim.Root().ARK(attest.Milan).Raw
	}, wantCode: attest.CodeChainMismatch, wantMsg: "ASK"},
	{name: "swapped ARK (Turin's)", mutate: func(t *testing.T, ev *attest.Evidence) {
		ev.CertTable, ev.VCEK, ev.ASK, ev.ARK = nil, mustCerts(t, ev), sim.Root().ASK(attest.Milan).Raw, sim.Root().ARK(attest.Turin).Raw
	}, wantCode: attest.CodeChainMismatch, wantMsg: "ARK"},
	{name: "wrong product expected", exp: func(e *attest.Expectation) { e.Product = attest.Genoa }, wantCode: attest.CodeWrongProduct, wantMsg: "Genoa was expected"},
	{name: "wrong product in reference", ref: func(r *attest.ReferenceValues) { r.Product = attest.Turin }, wantCode: attest.CodeWrongProduct, wantMsg: "only Turin"},
	{name: "VCEK expired at --at", exp: func(e *attest.Expectation) { e.At = sim.KeyNotAfter.Add(time.Hour) }, wantCode: attest.CodeCertExpired, wantMsg: "VCEK certificate expired"},
	{name: "certificates not yet valid at --at", exp: func(e *attest.Expectation) { e.At = sim.RootNotBefore.Add(-time.Hour) }, wantCode: attest.CodeCertNotYetValid},
	{name: "measurement not approved", opts: func(o *sim.ReportOptions) { o.Measurement = measurement("rogue") }, wantCode: attest.CodeMeasurement, wantMsg: "not in the approved set"},
	{name: "bootloader below minimum", ref: func(r *attest.ReferenceValues) { r.MinimumTCB.Bootloader++ }, wantCode: attest.CodeTCBBelowMinimum, wantMsg: "bootloader"},
	{name: "TEE below minimum", ref: func(r *attest.ReferenceValues) { r.MinimumTCB.TEE++ }, wantCode: attest.CodeTCBBelowMinimum, wantMsg: "TEE"},
	{name: "SNP firmware below minimum", ref: func(r *attest.ReferenceValues) { r.MinimumTCB.SNP++ }, wantCode: attest.CodeTCBBelowMinimum, wantMsg: "SNP firmware"},
	{name: "microcode below minimum", ref: func(r *attest.ReferenceValues) { r.MinimumTCB.Microcode++ }, wantCode: attest.CodeTCBBelowMinimum, wantMsg: "microcode"},
	{name: "Turin FMC below minimum", product: attest.Turin, ref: func(r *attest.ReferenceValues) { r.MinimumTCB.FMC++ }, wantCode: attest.CodeTCBBelowMinimum, wantMsg: "FMC"},
	{name: "Genoa SNP firmware below minimum", product: attest.Genoa, ref: func(r *attest.ReferenceValues) { r.MinimumTCB.SNP++ }, wantCode: attest.CodeTCBBelowMinimum, wantMsg: "SNP firmware"},
	{name: "debug policy", opts: func(o *sim.ReportOptions) { o.Policy = attest.PolicyBits(true, false, false, false) }, wantCode: attest.CodeDebug},
	{name: "debug policy even when everything else is allowed", opts: func(o *sim.ReportOptions) { o.Policy = attest.PolicyBits(true, true, true, false) },
		ref: func(r *attest.ReferenceValues) { r.AllowMigrationAgent, r.AllowSMT = true, true }, wantCode: attest.CodeDebug},
	{name: "migration agent not allowed", opts: func(o *sim.ReportOptions) { o.Policy = attest.PolicyBits(false, true, false, false) }, wantCode: attest.CodeMigrationAgent},
	{name: "SMT not allowed", opts: func(o *sim.ReportOptions) { o.Policy = attest.PolicyBits(false, false, true, false) }, wantCode: attest.CodeSMT},
	{name: "single socket required", ref: func(r *attest.ReferenceValues) { r.RequireSingleSocket = true }, wantCode: attest.CodeSingleSocket},
	{name: "VMPL not allowed", opts: func(o *sim.ReportOptions) { o.VMPL = 2 }, wantCode: attest.CodeVMPL, wantMsg: "VMPL 2"},
	{name: "VMPL outside an explicit set", opts: func(o *sim.ReportOptions) { o.VMPL = 0 }, ref: func(r *attest.ReferenceValues) { r.AllowedVMPLs = []uint32{1, 2} }, wantCode: attest.CodeVMPL},
	{name: "REPORT_DATA mismatch", exp: func(e *attest.Expectation) { e.ReportData = make([]byte, 64) }, wantCode: attest.CodeReportData},
	{name: "REPORT_DATA expectation of the wrong length", exp: func(e *attest.Expectation) { e.ReportData = rd[:32] }, wantCode: attest.CodeReportData},
	{name: "no REPORT_DATA expectation", exp: func(e *attest.Expectation) { e.ReportData = nil }, wantCode: attest.CodeReportData, wantMsg: "no expected REPORT_DATA"},
	{name: "host data mismatch", ref: func(r *attest.ReferenceValues) { r.HostData = bytes.Repeat([]byte{1}, 32) }, wantCode: attest.CodeHostData},
	{name: "family ID mismatch", ref: func(r *attest.ReferenceValues) { r.FamilyID = bytes.Repeat([]byte{2}, 16) }, wantCode: attest.CodeFamilyID},
	{name: "image ID mismatch", ref: func(r *attest.ReferenceValues) { r.ImageID = bytes.Repeat([]byte{3}, 16) }, wantCode: attest.CodeImageID},
	{name: "ID key not approved", ref: func(r *attest.ReferenceValues) { r.IDKeyDigests = []attest.Hex{measurement("id key")} }, wantCode: attest.CodeIDKey},
	{name: "author key not approved", opts: func(o *sim.ReportOptions) { o.AuthorKeyDigest = measurement("other author") },
		ref: func(r *attest.ReferenceValues) { r.AuthorKeyDigests = []attest.Hex{measurement("author")} }, wantCode: attest.CodeAuthorKey},
	{name: "chip not allowed", ref: func(r *attest.ReferenceValues) { r.AllowedChipIDs = []attest.Hex{bytes.Repeat([]byte{9}, 64)} }, wantCode: attest.CodeChipNotAllowed},
	{name: "allowed chips and a VLEK, which names no chip", opts: func(o *sim.ReportOptions) { o.VLEK = true },
		ref: func(r *attest.ReferenceValues) {
			c, _ := sim.NewChip(attest.Milan, "host-1")
			r.AllowedChipIDs = []attest.Hex{c.ID()}
		},
		wantCode: attest.CodeChipNotAllowed, wantMsg: "VLEK"},
	{name: "guest SVN below minimum", ref: func(r *attest.ReferenceValues) { r.MinimumGuestSVN = 3 }, wantCode: attest.CodeGuestSVN},
	{name: "current TCB below reported", opts: func(o *sim.ReportOptions) {
		cur := sim.DefaultTCB(attest.Milan)
		cur.SNP--
		o.CurrentTCB = &cur
	}, wantCode: attest.CodeTCBInconsistent, wantMsg: "CURRENT_TCB"},
	{name: "committed TCB above current", opts: func(o *sim.ReportOptions) {
		com := sim.DefaultTCB(attest.Milan)
		com.Microcode++
		o.CommittedTCB = &com
	}, wantCode: attest.CodeTCBInconsistent, wantMsg: "COMMITTED_TCB"},
	{name: "VCEK of another TCB", mutate: func(t *testing.T, ev *attest.Evidence) {
		c, _ := sim.NewChip(attest.Milan, "host-1")
		older := sim.DefaultTCB(attest.Milan)
		older.SNP -= 2
		vcek, err := c.VCEKCert(older)
		if err != nil {
			t.Fatal(err)
		}
		ev.CertTable, ev.VCEK = nil, vcek
	}, wantCode: attest.CodeBadSignature},
	{name: "CHIP_ID differs from the VCEK's hardware ID", opts: func(o *sim.ReportOptions) { o.ChipID = bytes.Repeat([]byte{0x42}, 64) }, wantCode: attest.CodeChipIDMismatch},
	{name: "missing certificate", opts: func(o *sim.ReportOptions) { o.Certs = sim.NoCerts }, wantCode: attest.CodeMissingCert},
	{name: "VCEK revoked by a cached CRL", cache: func(t *testing.T, c *attest.CertCache, v *attest.Verifier, ev *attest.Evidence) {
		cert, _ := x509.ParseCertificate(mustCerts(t, ev))
		crl, err := sim.Root().CRL(attest.Milan, testNow.Add(-24*time.Hour), cert.SerialNumber)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.ImportCRL(context.Background(), c, crl, "test"); err != nil {
			t.Fatal(err)
		}
	}, wantCode: attest.CodeCertRevoked},
	{name: "ASK revoked by a cached CRL", cache: func(t *testing.T, c *attest.CertCache, v *attest.Verifier, ev *attest.Evidence) {
		crl, err := sim.Root().CRL(attest.Milan, testNow.Add(-24*time.Hour), sim.Root().ASK(attest.Milan).SerialNumber)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.ImportCRL(context.Background(), c, crl, "test"); err != nil {
			t.Fatal(err)
		}
	}, wantCode: attest.CodeCertRevoked, wantMsg: "SEV-Milan"},
	{name: "truncated report", mutate: func(t *testing.T, ev *attest.Evidence) { ev.Report = ev.Report[:1000] }, wantCode: attest.CodeMalformed, wantMsg: "1000 bytes"},
	{name: "oversized report", mutate: func(t *testing.T, ev *attest.Evidence) { ev.Report = append(ev.Report, 0) }, wantCode: attest.CodeMalformed, wantMsg: "1185 bytes"},
	{name: "empty report", mutate: func(t *testing.T, ev *attest.Evidence) { ev.Report = nil }, wantCode: attest.CodeMalformed},
	{name: "report version 1", mutate: func(t *testing.T, ev *attest.Evidence) { ev.Report[0] = 1 }, wantCode: attest.CodeMalformed, wantMsg: "version"},
	{name: "reserved bytes set", mutate: func(t *testing.T, ev *attest.Evidence) { ev.Report[0x4C] = 1 }, wantCode: attest.CodeMalformed},
	{name: "garbage certificate table", mutate: func(t *testing.T, ev *attest.Evidence) { ev.CertTable = bytes.Repeat([]byte{0xA5}, 100) }, wantCode: attest.CodeMalformed, wantMsg: "certificate table"},
	{name: "oversized certificate table", mutate: func(t *testing.T, ev *attest.Evidence) { ev.CertTable = make([]byte, attest.MaxCertTableSize+1) }, wantCode: attest.CodeMalformed},
	{name: "garbage VCEK", mutate: func(t *testing.T, ev *attest.Evidence) { ev.CertTable, ev.VCEK = nil, []byte("not a certificate") }, wantCode: attest.CodeMalformed, wantMsg: "VCEK"},
	{name: "oversized vTPM attestation", mutate: func(t *testing.T, ev *attest.Evidence) { ev.TPM = make([]byte, attest.MaxTPMSize+1) }, wantCode: attest.CodeMalformed},
	{name: "garbage vTPM attestation", mutate: func(t *testing.T, ev *attest.Evidence) { ev.TPM = []byte{0xff, 0xff, 0xff} }, wantCode: attest.CodeTPMMalformed},
	{name: "vTPM required but absent", ref: func(r *attest.ReferenceValues) { r.TPM = &attest.TPMReference{Required: true} }, wantCode: attest.CodeTPMMissing},
}

func mustCerts(t *testing.T, ev *attest.Evidence) []byte {
	t.Helper()
	if len(ev.VCEK) > 0 {
		return ev.VCEK
	}
	var tab abi.CertTable
	if err := tab.Unmarshal(ev.CertTable); err != nil {
		t.Fatal(err)
	}
	b, err := tab.GetByGUIDString(abi.VcekGUID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	forgedOnce sync.Once
	forgedASK  *rsa.PrivateKey
)

// forgeChain replaces the VCEK by one with AMD's names and extensions,
// issued by a forged "SEV-Milan" ASK, and re-signs the report with it.
func forgeChain(t *testing.T, ev *attest.Evidence) {
	forgedOnce.Do(func() {
		var err error
		if forgedASK, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	real := sim.Root().ASK(attest.Milan)
	askTmpl := *real
	askTmpl.PublicKey = nil
	askDER, err := x509.CreateCertificate(rand.Reader, &askTmpl, &askTmpl, &forgedASK.PublicKey, forgedASK)
	if err != nil {
		t.Fatal(err)
	}
	ask, _ := x509.ParseCertificate(askDER)
	vcek, _ := x509.ParseCertificate(mustCerts(t, ev))
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := *vcek
	tmpl.ExtraExtensions = nil
	for _, e := range vcek.Extensions {
		if len(e.Id) > 6 && e.Id[6] == 3704 {
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, e)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ask, &key.PublicKey, forgedASK)
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.Sum384(abi.SignedComponent(ev.Report))
	r, s, _ := ecdsa.Sign(rand.Reader, key, h[:])
	if err := abi.SetSignature(r, s, ev.Report); err != nil {
		t.Fatal(err)
	}
	ev.CertTable, ev.VCEK, ev.ASK, ev.ARK = nil, der, nil, nil
	_ = kds.OidHwid
}

func openStore(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), storetest.Location(t, t.TempDir()), store.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestNegativeCorpus refuses each case with its own reason code, both with a
// cold chain cache and with one warmed by the same chip's honest evidence.
func TestNegativeCorpus(t *testing.T) {
	ctx := context.Background()
	for _, tc := range negCases {
		for _, warm := range []bool{false, true} {
			name := tc.name + map[bool]string{false: "/cold", true: "/warm"}[warm]
			t.Run(name, func(t *testing.T) {
				p := tc.product
				if p == attest.Unknown {
					p = attest.Milan
				}
				c := chip(t, p, "host-1")
				o := sim.ReportOptions{ReportData: rd}
				if tc.opts != nil {
					tc.opts(&o)
				}
				ev, err := c.Evidence(o)
				if err != nil {
					t.Fatal(err)
				}
				// Only the CRL cases need the database.
				var cache *attest.CertCache
				opts := attest.Options{}
				if tc.cache != nil {
					cache = attest.NewCertCache(openStore(t))
					opts.Certs = cache
				}
				var v *attest.Verifier
				if strings.Contains(tc.name, "production roots only") {
					v, err = attest.NewVerifier(ctx, attest.Options{Now: func() time.Time { return testNow }})
					if err != nil {
						t.Fatal(err)
					}
				} else {
					v = newVerifier(t, opts)
				}
				if warm {
					honest, err := c.Evidence(sim.ReportOptions{ReportData: rd})
					if err != nil {
						t.Fatal(err)
					}
					vd, err := v.Verify(ctx, honest, goodRef(p), attest.Expectation{ReportData: rd[:]})
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(tc.name, "production roots only") && !vd.Verified {
						t.Fatalf("honest evidence refused: %v", vd.Reasons)
					}
				}
				if tc.mutate != nil {
					tc.mutate(t, ev)
				}
				if tc.cache != nil {
					tc.cache(t, cache, v, ev)
				}
				ref := goodRef(p)
				if tc.ref != nil {
					tc.ref(ref)
				}
				exp := attest.Expectation{ReportData: rd[:]}
				if tc.exp != nil {
					tc.exp(&exp)
				}
				vd, err := v.Verify(ctx, ev, ref, exp)
				if err != nil {
					t.Fatal(err)
				}
				if vd.Verified {
					t.Fatalf("verified, want refusal %s", tc.wantCode)
				}
				if !vd.Has(tc.wantCode) {
					t.Fatalf("reasons %v, want code %s", vd.Reasons, tc.wantCode)
				}
				chainCodes := map[attest.Code]bool{attest.CodeMalformed: true, attest.CodeBadSignature: true, attest.CodeUntrustedChain: true,
					attest.CodeChainMismatch: true, attest.CodeMissingCert: true, attest.CodeCertExpired: true, attest.CodeCertNotYetValid: true,
					attest.CodeCertRevoked: true, attest.CodeTCBInconsistent: true, attest.CodeChipIDMismatch: true}
				if want := !chainCodes[tc.wantCode] && tc.name != "wrong product expected"; vd.Authentic != want {
					t.Fatalf("authentic=%v, want %v (%v)", vd.Authentic, want, vd.Reasons)
				}
				if tc.wantMsg != "" {
					found := false
					for _, r := range vd.Reasons {
						found = found || (r.Code == tc.wantCode && strings.Contains(r.Message, tc.wantMsg))
					}
					if !found {
						t.Fatalf("no %s reason mentions %q: %v", tc.wantCode, tc.wantMsg, vd.Reasons)
					}
				}
			})
		}
	}
}
