package attest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"

	"keyholder/backend/attest"
	"keyholder/backend/sim"
	"keyholder/backend/sim/simtpm"
)

func benchEvidence(b *testing.B) (*attest.Evidence, *attest.ReferenceValues) {
	c := chip(b, attest.Milan, "bench-host")
	ev, err := c.Evidence(sim.ReportOptions{ReportData: rd})
	if err != nil {
		b.Fatal(err)
	}
	return ev, goodRef(attest.Milan)
}

// BenchmarkVerifyWarm is a steady-state verification: the VCEK's chain is in
// the warm cache, so the cost is one ECDSA P-384 check plus parsing and the
// policy checks.
func BenchmarkVerifyWarm(b *testing.B) {
	v := newVerifier(b, attest.Options{})
	ev, ref := benchEvidence(b)
	ctx := context.Background()
	exp := attest.Expectation{ReportData: rd[:]}
	if vd, _ := v.Verify(ctx, ev, ref, exp); !vd.Verified {
		b.Fatal(vd.Reasons)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		vd, err := v.Verify(ctx, ev, ref, exp)
		if err != nil || !vd.Verified || !vd.ChainCached {
			b.Fatal(err, vd.Reasons)
		}
	}
}

// BenchmarkVerifyCold verifies with the chain cache disabled: the VCEK is
// parsed and its chain to the ARK (RSA-4096 PSS) checked every time.
func BenchmarkVerifyCold(b *testing.B) {
	v := newVerifier(b, attest.Options{ChainCacheSize: -1})
	ev, ref := benchEvidence(b)
	ctx := context.Background()
	exp := attest.Expectation{ReportData: rd[:]}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		vd, err := v.Verify(ctx, ev, ref, exp)
		if err != nil || !vd.Verified || vd.ChainCached {
			b.Fatal(err, vd.Reasons)
		}
	}
}

// BenchmarkRawECDSAP384 is the floor: one ECDSA P-384 verification of the
// same report's signature with the VCEK's key (SHA-384 hashing included).
func BenchmarkRawECDSAP384(b *testing.B) {
	ev, _ := benchEvidence(b)
	pub, r, s, signed := rawSignature(b, ev)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := sha512.Sum384(signed)
		if !ecdsa.Verify(pub, h[:], r, s) {
			b.Fatal("signature does not verify")
		}
	}
}

// BenchmarkWarmVsRawInterleaved alternates one warm verification and one raw
// ECDSA P-384 verify per iteration, so that both see the same machine load
// (the separate benchmarks run minutes apart on a shared machine), and
// reports each one's time and the warm rate as a share of the raw rate.
func BenchmarkWarmVsRawInterleaved(b *testing.B) {
	v := newVerifier(b, attest.Options{})
	ev, ref := benchEvidence(b)
	ctx := context.Background()
	exp := attest.Expectation{ReportData: rd[:]}
	if vd, _ := v.Verify(ctx, ev, ref, exp); !vd.Verified {
		b.Fatal(vd.Reasons)
	}
	pub, r, s, signed := rawSignature(b, ev)
	var warm, raw time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		vd, err := v.Verify(ctx, ev, ref, exp)
		t1 := time.Now()
		h := sha512.Sum384(signed)
		ok := ecdsa.Verify(pub, h[:], r, s)
		t2 := time.Now()
		if err != nil || !vd.Verified || !ok {
			b.Fatal(err, ok)
		}
		warm += t1.Sub(t0)
		raw += t2.Sub(t1)
	}
	b.ReportMetric(float64(warm.Nanoseconds())/float64(b.N), "warm-ns/op")
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(100*float64(raw)/float64(warm), "warm-rate-%")
}

func rawSignature(b *testing.B, ev *attest.Evidence) (*ecdsa.PublicKey, *big.Int, *big.Int, []byte) {
	var tab abi.CertTable
	if err := tab.Unmarshal(ev.CertTable); err != nil {
		b.Fatal(err)
	}
	der, _ := tab.GetByGUIDString(abi.VcekGUID)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	sig := ev.Report[0x2A0:]
	return cert.PublicKey.(*ecdsa.PublicKey), new(big.Int).SetBytes(reverse(sig[0:72])), new(big.Int).SetBytes(reverse(sig[72:144])), abi.SignedComponent(ev.Report)
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

// BenchmarkVerifyTPM verifies a vTPM attestation bound to the SNP report
// (quote signature, PCR digest, event log replay and parsing).
func BenchmarkVerifyTPM(b *testing.B) {
	v := newVerifier(b, attest.Options{})
	nonce := []byte("bench nonce")
	att := tpmAtt(b, simtpm.Options{Seed: 7, SecureBoot: true}, nonce)
	akd := (&attest.Evidence{TPM: att}).AKDigest()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, reasons := v.VerifyTPM(att, nonce, akd, false, nil); len(reasons) > 0 {
			b.Fatal(reasons)
		}
	}
}
