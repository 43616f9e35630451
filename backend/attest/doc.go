// Package attest decides whether a guest's evidence shows an approved
// confidential VM on genuine AMD hardware: SEV-SNP attestation reports
// (Milan, Genoa, Turin; VCEK or VLEK), their AMD certificate chains, and
// optionally a vTPM attestation.
//
// Use a Verifier:
//
//	v, err := attest.NewVerifier(ctx, attest.Options{Certs: attest.NewCertCache(db)})
//	vd, err := v.Verify(ctx, ev, &ref, attest.Expectation{ReportData: transcriptHash})
//	if vd.Verified { ... } else { for _, r := range vd.Reasons { r.Code, r.Message } }
//
// Verify never fails on bad evidence: every problem is a Reason with a stable
// Code and a sentence for a person, all reported at once. Its error is only
// for a cancelled context or a failing certificate cache.
//
// The trust steps mirror go-sev-guest, which does the cryptography:
//   - the signing certificate (VCEK/VLEK) comes from the evidence or from
//     the SQLite CertCache, never from AMD's key server at verification
//     time (DisableCertFetching);
//   - its chain ends at a trusted ARK given explicitly to go-sev-guest's
//     verify (TrustedRoots is always set: AMD's embedded roots, or the
//     simulated root with the development option); ASK/ARK in the evidence
//     must be those trusted ones;
//   - go-sev-guest's validate, with a fresh permissive Options per call,
//     checks the report's internal consistency (TCBs, CHIP_ID);
//   - Keyholder's ReferenceValues (versioned per image in the store by
//     References) decide what is approved, one Reason per failure;
//   - REPORT_DATA must equal the caller's transcript hash (constant time);
//   - a vTPM attestation is checked with go-tpm-tools' VerifyAttestation,
//     its key trusted through the SNP report (Expectation.AKDigest) or
//     Google's EK/AK roots (Options.TrustGCEAK).
//
// A verified chain is remembered per certificate fingerprint, so that a
// steady-state verification costs one ECDSA P-384 check. CRLs from the
// cache are applied when fresh; otherwise the Verdict warns that revocation
// was not checked.
//
// Out of scope: fetching certificates while verifying, ID-block signature
// checks (the firmware checked them at launch), and TDX. LIMITATIONS.md
// states the security assumptions.
//
// Spec: AMD SEV-SNP ABI (56860), Versioned Chip Endorsement Key (57230).
package attest
