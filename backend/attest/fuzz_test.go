package attest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-sev-guest/abi"

	"keyholder/backend/attest"
	"keyholder/backend/sim"
)

// FuzzParseReport feeds arbitrary bytes to the report parser: it never
// panics, accepts only exactly 1184 bytes, and what it accepts encodes as JSON.
func FuzzParseReport(f *testing.F) {
	f.Add(make([]byte, attest.ReportSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := attest.ReportClaims(data)
		if err != nil {
			return
		}
		if len(data) != attest.ReportSize {
			t.Fatalf("accepted %d bytes", len(data))
		}
		if _, err := json.Marshal(c); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseCertData feeds arbitrary certificate files: every certificate
// returned classifies as an AMD certificate.
func FuzzParseCertData(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ders, err := attest.ParseCertData(data)
		if err != nil {
			return
		}
		if len(ders) == 0 {
			t.Fatal("no error and no certificate")
		}
		for _, d := range ders {
			if _, err := attest.ClassifyCert(d); err != nil {
				t.Fatalf("returned an unclassifiable certificate: %v", err)
			}
		}
		var ev attest.Evidence
		_ = ev.AddCerts(ders...)
	})
}

// FuzzParseEvidence feeds arbitrary JSON: accepted evidence re-encodes to
// evidence with the same hash.
func FuzzParseEvidence(f *testing.F) {
	f.Add([]byte(`{"report":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := attest.ParseEvidence(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ev2, err := attest.ParseEvidence(b)
		if err != nil {
			t.Fatalf("re-encoded evidence refused: %v", err)
		}
		if ev.Hash() != ev2.Hash() {
			t.Fatal("hash changed across a JSON round trip")
		}
	})
}

// FuzzParseReferenceValues feeds arbitrary JSON reference values: accepted
// ones validate.
func FuzzParseReferenceValues(f *testing.F) {
	f.Add([]byte(`{"measurements":["` + string(bytes.Repeat([]byte("ab"), 48)) + `"],"minimum_tcb":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := attest.ParseReferenceValues(data)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzVerifyReport mutates a genuine simulated report (and its certificate
// table): with only that chip allowed, a report whose signed part differs
// from the genuine one never verifies, and nothing panics.
func FuzzVerifyReport(f *testing.F) {
	c, err := sim.NewChip(attest.Milan, "fuzz-host")
	if err != nil {
		f.Fatal(err)
	}
	ev, err := c.Evidence(sim.ReportOptions{ReportData: rd})
	if err != nil {
		f.Fatal(err)
	}
	genuine := append([]byte(nil), ev.Report...)
	f.Add(genuine, ev.CertTable)
	v := newVerifier(f, attest.Options{})
	ref := goodRef(attest.Milan)
	ref.Product = attest.Milan
	ref.AllowedChipIDs = []attest.Hex{c.ID()}
	f.Fuzz(func(t *testing.T, report, table []byte) {
		vd, err := v.Verify(context.Background(), &attest.Evidence{Report: report, CertTable: table}, ref, attest.Expectation{ReportData: rd[:]})
		if err != nil {
			t.Fatal(err)
		}
		if vd.Verified && (len(report) != attest.ReportSize || !bytes.Equal(abi.SignedComponent(report), abi.SignedComponent(genuine))) {
			t.Fatal("a modified report verified")
		}
	})
}
