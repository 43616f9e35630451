package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

// CertSource supplies certificates the evidence does not carry, and CRLs.
// CertCache implements it over the console's database.
type CertSource interface {
	// SigningCerts returns candidate DER certificates for the key that signed
	// a report: the VCEK of chipID at reportedTCB, or the product's VLEKs.
	SigningCerts(ctx context.Context, p Product, s Signer, chipID []byte, reportedTCB uint64) ([][]byte, error)
	// CRLs returns the DER CRLs the cache holds.
	CRLs(ctx context.Context) ([][]byte, error)
}

// Options configures a Verifier. The zero value trusts AMD's production
// roots, uses time.Now, has no certificate cache and a 30-day CRL age.
type Options struct {
	// Roots are the trusted AMD roots; nil means ProductionRoots.
	Roots []*Root
	// TrustSimulatedRoot, a development option, also trusts SimulatedRoots.
	// Every Verdict under them says Simulated.
	TrustSimulatedRoot bool
	// SimulatedRoots are the simulated roots (sim.Root().TrustedRoots());
	// ignored unless TrustSimulatedRoot.
	SimulatedRoots []*Root
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Certs is the certificate and CRL cache; nil means evidence must carry
	// its certificates and revocation is never checked.
	Certs CertSource
	// CRLMaxAge is how old the newest CRL may be before the Verdict says
	// "revocation not checked"; zero means 30 days.
	CRLMaxAge time.Duration
	// ChainCacheSize bounds the warm chain cache; zero means 4096 entries,
	// negative disables it.
	ChainCacheSize int
	// TrustGCEAK trusts a vTPM attestation key certified by Google's EK/AK
	// roots (Google Cloud); otherwise the AK must be bound into the SNP report.
	TrustGCEAK bool
}

// Expectation is what the caller's protocol binds into the evidence.
type Expectation struct {
	// ReportData is the 64-byte REPORT_DATA the caller expects (its
	// transcript hash). Nil refuses the evidence unless SkipReportData.
	ReportData []byte
	// SkipReportData checks authenticity without a REPORT_DATA binding (the
	// CLI without --report-data); the Verdict warns. Never on a release path.
	SkipReportData bool
	// TPMNonce is the nonce the vTPM quote must be over; nil means ReportData.
	TPMNonce []byte
	// AKDigest is Evidence.AKDigest as the caller hashed it into ReportData:
	// the vTPM attestation key is trusted through the SNP report only when it
	// equals the evidence's AK digest and ReportData matched.
	AKDigest []byte
	// Product, when set, is the product the evidence must come from.
	Product Product
	// At verifies as of this time (archived evidence); zero means Options.Now.
	At time.Time
	// StaleCRL says what a missing or stale CRL does: CRLWarn (the zero
	// value) adds a warning, CRLRefuse refuses the evidence.
	StaleCRL CRLPolicy
	// Image and ReferenceVersion name the reference values for messages and
	// the Verdict ("not in the approved set of image web-01 (version 4)").
	Image            string
	ReferenceVersion int
}

// CRLPolicy is what verification does when it cannot check revocation
// because the certificate cache has no fresh CRL for the product.
type CRLPolicy string

// CRL policies.
const (
	// CRLWarn verifies the evidence with a revocation_not_checked warning.
	CRLWarn CRLPolicy = "warn"
	// CRLRefuse refuses the evidence with a revocation_not_checked reason.
	CRLRefuse CRLPolicy = "refuse"
)

// ParseCRLPolicy reads "warn", "refuse" or "" (warn).
func ParseCRLPolicy(s string) (CRLPolicy, error) {
	switch CRLPolicy(s) {
	case "", CRLWarn:
		return CRLWarn, nil
	case CRLRefuse:
		return CRLRefuse, nil
	}
	return "", fmt.Errorf("stale CRL policy %q: want warn or refuse", s)
}

// Verifier checks evidence. It is safe for concurrent use.
type Verifier struct {
	roots     []*Root
	now       func() time.Time
	certs     CertSource
	crlMaxAge time.Duration
	gce       bool

	chains *chainCache

	crlMu sync.RWMutex
	crls  map[Product]*crlInfo
}

type crlInfo struct {
	thisUpdate, nextUpdate time.Time
	revoked                map[string]bool // serial numbers (decimal)
}

// NewVerifier checks the trusted roots and loads the CRLs from the cache.
func NewVerifier(ctx context.Context, o Options) (*Verifier, error) {
	v := &Verifier{now: o.Now, certs: o.Certs, crlMaxAge: o.CRLMaxAge, gce: o.TrustGCEAK}
	if v.now == nil {
		v.now = time.Now
	}
	if v.crlMaxAge == 0 {
		v.crlMaxAge = 30 * 24 * time.Hour
	}
	roots := o.Roots
	if roots == nil {
		var err error
		if roots, err = ProductionRoots(); err != nil {
			return nil, err
		}
	}
	for _, r := range roots {
		if r.Simulated {
			return nil, fmt.Errorf("simulated %s root given as a production root; use TrustSimulatedRoot", r.Product)
		}
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("trusted root: %w", err)
		}
		v.roots = append(v.roots, r)
	}
	if o.TrustSimulatedRoot {
		for _, r := range o.SimulatedRoots {
			if err := r.check(); err != nil {
				return nil, fmt.Errorf("simulated root: %w", err)
			}
			c := *r
			c.Simulated = true
			v.roots = append(v.roots, &c)
		}
	}
	if len(v.roots) == 0 {
		return nil, fmt.Errorf("no trusted AMD roots")
	}
	size := o.ChainCacheSize
	if size == 0 {
		size = 4096
	}
	v.chains = newChainCache(size)
	if err := v.ReloadCRLs(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Roots lists the trusted roots (simulated ones marked).
func (v *Verifier) Roots() []*Root { return append([]*Root(nil), v.roots...) }

// ReloadCRLs reads the CRLs from the certificate cache again, keeping those
// signed by a trusted ARK, the newest per product. Call it after importing.
func (v *Verifier) ReloadCRLs(ctx context.Context) error {
	crls := map[Product]*crlInfo{}
	if v.certs != nil {
		ders, err := v.certs.CRLs(ctx)
		if err != nil {
			return fmt.Errorf("load CRLs: %w", err)
		}
		for _, der := range ders {
			p, crl, err := v.checkCRL(der)
			if err != nil {
				continue // the cache only stores checked CRLs; a root change may orphan one
			}
			if old := crls[p]; old != nil && !crl.ThisUpdate.After(old.thisUpdate) {
				continue
			}
			info := &crlInfo{thisUpdate: crl.ThisUpdate, nextUpdate: crl.NextUpdate, revoked: map[string]bool{}}
			for _, e := range crl.RevokedCertificateEntries {
				info.revoked[e.SerialNumber.String()] = true
			}
			crls[p] = info
		}
	}
	v.crlMu.Lock()
	v.crls = crls
	v.crlMu.Unlock()
	v.chains.clear()
	return nil
}

// checkCRL parses a CRL and finds the trusted ARK that signed it.
func (v *Verifier) checkCRL(der []byte) (Product, *x509.RevocationList, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return Unknown, nil, fmt.Errorf("parse CRL: %w", err)
	}
	for _, r := range v.roots {
		if bytes.Equal(crl.RawIssuer, r.ARK.RawSubject) && crl.CheckSignatureFrom(r.ARK) == nil {
			return r.Product, crl, nil
		}
	}
	return Unknown, nil, fmt.Errorf("CRL is not signed by a trusted AMD root")
}

// chainEntry is a VCEK/VLEK whose chain to a trusted root verified.
type chainEntry struct {
	cert    *x509.Certificate
	signer  Signer
	product Product
	root    *Root
	tcb     uint64
	hwid    []byte
	key     reportKey // the warm signature check
}

// Verify checks ev: the report's signature and AMD chain, the report's
// internal consistency, REPORT_DATA against exp, the reference values (when
// ref is not nil) and the vTPM attestation. Problems with the evidence are
// Reasons in the Verdict; the error is only for a cancelled context or a
// failing certificate cache.
func (v *Verifier) Verify(ctx context.Context, ev *Evidence, ref *ReferenceValues, exp Expectation) (*Verdict, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	vd := &Verdict{Reasons: []Reason{}, Warnings: []Reason{}}
	if ev == nil {
		vd.refuse(CodeMalformed, "no evidence")
		return vd, nil
	}
	vd.EvidenceHash = ev.HashHex()
	now := exp.At
	if now.IsZero() {
		now = v.now()
	}
	report, err := parseReport(ev.Report)
	if err != nil {
		vd.refuse(CodeMalformed, "%s", strings.TrimPrefix(err.Error(), ErrMalformed.Error()+": "))
		return vd, nil
	}
	product := productOfReport(report)
	vd.Claims = claimsOf(report, product)
	certs, err := ev.certs()
	if err != nil {
		vd.refuse(CodeMalformed, "%s", strings.TrimPrefix(err.Error(), ErrMalformed.Error()+": "))
		return vd, nil
	}
	if len(ev.TPM) > MaxTPMSize {
		vd.refuse(CodeMalformed, "vTPM attestation is %d bytes, the limit is %d", len(ev.TPM), MaxTPMSize)
		return vd, nil
	}

	entry, err := v.chain(ctx, vd, ev, report, product, certs, exp, now)
	if err != nil {
		return nil, err
	}
	if entry != nil {
		if product == Unknown {
			product = entry.product
			vd.Claims = claimsOf(report, product)
		}
		vd.Simulated = entry.root.Simulated
		if entry.signer == VCEK && len(entry.hwid) > 0 {
			vd.HardwareID = append(Hex(nil), entry.hwid...)
		}
		if vd.Simulated {
			vd.warn(CodeSimulated, "SIMULATED: this evidence is signed by the simulated AMD root, trusted only in development mode")
		}
		v.checkValidity(vd, entry, now)
		checkConsistency(vd, report, entry)
		v.checkRevocation(vd, entry, now, exp.StaleCRL)
		vd.Authentic = len(vd.Reasons) == 0
	}

	// REPORT_DATA binding.
	reportDataOK := false
	if exp.ReportData == nil && exp.SkipReportData {
		vd.warn(CodeReportDataNotChecked, "REPORT_DATA was not compared with an expected value")
	} else if exp.ReportData == nil {
		vd.refuse(CodeReportData, "no expected REPORT_DATA was given to compare the report's with")
	} else if len(exp.ReportData) != ReportDataSize || subtle.ConstantTimeCompare(exp.ReportData, report.GetReportData()) != 1 {
		vd.refuse(CodeReportData, "REPORT_DATA %s… is not the expected transcript hash %s…", shortHex(report.GetReportData()), shortHex(exp.ReportData))
	} else {
		reportDataOK = true
	}

	vd.Image, vd.ReferenceVersion = exp.Image, exp.ReferenceVersion
	if ref != nil {
		checkReference(vd, report, product, ref, refLabel(exp))
	} else {
		vd.warn(CodeReferenceNotChecked, "no reference values were applied: authenticity only")
	}

	// vTPM.
	if len(ev.TPM) > 0 {
		nonce := exp.TPMNonce
		if nonce == nil {
			nonce = exp.ReportData
		}
		// The AK is bound only through an authentic report whose
		// REPORT_DATA is the caller's transcript (which hashed the AK).
		var bound []byte
		if reportDataOK && vd.Authentic {
			bound = exp.AKDigest
		}
		var tref *TPMReference
		if ref != nil {
			tref = ref.TPM
		}
		st, reasons := v.verifyTPM(ev.TPM, nonce, bound, v.gce, tref)
		vd.TPM = st
		vd.Reasons = append(vd.Reasons, reasons...)
	} else if ref != nil && ref.TPM != nil && ref.TPM.Required {
		vd.refuse(CodeTPMMissing, "the reference values require a vTPM attestation and the evidence has none")
	}
	vd.Verified = len(vd.Reasons) == 0
	return vd, nil
}

// chain finds the signing certificate, establishes its chain (from the warm
// cache or with go-sev-guest's verify and validate) and checks the report
// signature. It returns nil after adding reasons when there is no trusted key.
func (v *Verifier) chain(ctx context.Context, vd *Verdict, ev *Evidence, report *spb.Report, product Product,
	certs *evidenceCerts, exp Expectation, now time.Time) (*chainEntry, error) {
	signer := vd.Claims.Signer
	if exp.Product != Unknown && product != Unknown && exp.Product != product {
		vd.refuse(CodeWrongProduct, "the report comes from a %s processor, %s was expected", product, exp.Product)
		return nil, nil
	}
	want := product
	if want == Unknown {
		want = exp.Product
	}

	// The evidence's own intermediates and root must be the trusted ones: a
	// swapped or broken ASK/ARK is refused even though go-sev-guest would
	// ignore it and use the trusted copies.
	for _, c := range []struct {
		der  []byte
		name string
	}{{certs.ask, "ASK"}, {certs.asvk, "ASVK"}, {certs.ark, "ARK"}} {
		if len(c.der) == 0 {
			continue
		}
		ok := false
		for _, r := range v.roots {
			if (want == Unknown || r.Product == want) && r.holds(c.der) {
				ok = true
				break
			}
		}
		if !ok {
			vd.refuse(CodeChainMismatch, "the %s in the evidence is not a trusted AMD %s %s", c.name, orAny(want), c.name)
		}
	}
	if len(vd.Reasons) > 0 {
		return nil, nil
	}

	der := certs.vcek
	if signer == VLEK {
		der = certs.vlek
	}
	candidates := [][]byte{der}
	if len(der) == 0 {
		candidates = nil
		if v.certs != nil && want != Unknown {
			var err error
			candidates, err = v.certs.SigningCerts(ctx, want, signer, report.GetChipId(), report.GetReportedTcb())
			if err != nil {
				return nil, fmt.Errorf("certificate cache: %w", err)
			}
		}
		if len(candidates) == 0 {
			vd.refuse(CodeMissingCert, "the evidence has no %s certificate and the certificate cache has none for this %s at TCB %#x", signer, orAny(want), report.GetReportedTcb())
			return nil, nil
		}
	}

	var lastReasons []Reason
	for _, der := range candidates {
		trial := &Verdict{}
		e := v.chainOne(trial, ev.Report, report, product, want, signer, der, now)
		if e != nil {
			vd.ChainCached = trial.ChainCached
			return e, nil
		}
		lastReasons = trial.Reasons
	}
	vd.Reasons = append(vd.Reasons, lastReasons...)
	return nil, nil
}

func (v *Verifier) chainOne(vd *Verdict, raw []byte, report *spb.Report, product, want Product, signer Signer, der []byte, now time.Time) *chainEntry {
	fp := sha256.Sum256(der)
	if e := v.chains.get(fp); e != nil && e.signer == signer && (want == Unknown || e.product == want) {
		if err := e.verifyReport(raw); err != nil {
			vd.refuse(CodeBadSignature, "the report's signature does not verify with its %s", signer)
			return nil
		}
		vd.ChainCached = true
		return e
	}
	e := v.coldChain(vd, raw, report, product, want, signer, der, now)
	if e != nil {
		v.chains.put(fp, e)
	}
	return e
}

// coldChain verifies a signing certificate from scratch.
func (v *Verifier) coldChain(vd *Verdict, raw []byte, report *spb.Report, product, want Product, signer Signer, der []byte, now time.Time) *chainEntry {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		vd.refuse(CodeMalformed, "the %s certificate does not parse: %v", signer, err)
		return nil
	}
	key := abi.VcekReportSigner
	if signer == VLEK {
		key = abi.VlekReportSigner
	}
	exts, err := kds.CertificateExtensions(cert, key)
	if err != nil {
		vd.refuse(CodeBadCertificate, "the %s certificate lacks AMD's KDS extensions: %v", signer, err)
		return nil
	}
	if pr, err := kds.ParseProductName(exts.ProductName, key); err == nil {
		certProduct := Product(kds.ProductLine(pr))
		if want != Unknown && certProduct != want {
			vd.refuse(CodeWrongProduct, "the %s certificate is for %s, the report comes from %s", signer, certProduct, want)
			return nil
		}
		if want == Unknown {
			want = certProduct
		}
	}
	if want == Unknown {
		vd.refuse(CodeWrongProduct, "the product cannot be determined (version %d report); pass the expected product", report.GetVersion())
		return nil
	}
	// Which trusted root issued it? Try this product's roots, then the
	// others to say "wrong product" rather than "untrusted".
	var root *Root
	for _, r := range v.roots {
		if ica := r.intermediate(signer); ica != nil && bytes.Equal(cert.RawIssuer, ica.RawSubject) && cert.CheckSignatureFrom(ica) == nil {
			if r.Product == want {
				root = r
				break
			}
			if root == nil {
				root = r
			}
		}
	}
	if root == nil {
		vd.refuse(CodeUntrustedChain, "the %s is not signed by a trusted AMD %s %s", signer, want, map[Signer]string{VCEK: "ASK", VLEK: "ASVK"}[signer])
		return nil
	}
	if root.Product != want {
		vd.refuse(CodeWrongProduct, "the %s chains to the %s root, the report comes from %s", signer, root.Product, want)
		return nil
	}
	e := &chainEntry{cert: cert, signer: signer, product: want, root: root, tcb: uint64(exts.TCBVersion), hwid: exts.HWID}
	v.checkValidity(vd, e, now)
	if len(vd.Reasons) > 0 {
		return nil
	}

	// go-sev-guest's verify: certificate chain and report signature, offline,
	// with only the trusted root of this product. Options are fresh per call.
	att := &spb.Attestation{Report: report, CertificateChain: &spb.CertificateChain{}}
	if signer == VLEK {
		att.CertificateChain.VlekCert = der
	} else {
		att.CertificateChain.VcekCert = der
	}
	vopts := &verify.Options{
		DisableCertFetching: true,
		Now:                 now,
		TrustedRoots:        map[string][]*trust.AMDRootCerts{string(want): {root.trust()}},
	}
	if pr, err := kds.ParseProductLine(string(want)); err == nil && report.GetCpuid1EaxFms() == 0 {
		vopts.Product = pr
	}
	if err := verify.SnpAttestation(att, vopts); err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "signature verification error"):
			vd.refuse(CodeBadSignature, "the report's signature does not verify with its %s", signer)
		default:
			vd.refuse(CodeUntrustedChain, "the %s chain does not verify: %s", signer, msg)
		}
		return nil
	}
	// go-sev-guest's validate with a permissive policy: the report's
	// internal consistency (TCBs against each other and the certificate,
	// CHIP_ID against the hardware ID). Reference values are checked by us.
	checkConsistency(vd, report, e)
	if len(vd.Reasons) > 0 {
		return nil
	}
	if err := validate.SnpAttestation(att, permissiveValidateOptions()); err != nil {
		vd.refuse(CodeTCBInconsistent, "the report is not internally consistent: %v", err)
		return nil
	}
	return e
}

// permissiveValidateOptions accepts every policy and leaves reference
// values to checkReference. It is built fresh per call because validate
// appends to its slices.
func permissiveValidateOptions() *validate.Options {
	return &validate.Options{
		GuestPolicy:               abi.SnpPolicy{SMT: true, MigrateMA: true, Debug: true, CXLAllowed: true},
		PermitProvisionalFirmware: true,
	}
}

func (v *Verifier) checkValidity(vd *Verdict, e *chainEntry, now time.Time) {
	for _, c := range []struct {
		cert *x509.Certificate
		name string
	}{{e.cert, string(e.signer)}, {e.root.intermediate(e.signer), map[Signer]string{VCEK: "ASK", VLEK: "ASVK"}[e.signer]}, {e.root.ARK, "ARK"}} {
		if c.cert == nil {
			continue
		}
		if now.Before(c.cert.NotBefore) {
			vd.refuse(CodeCertNotYetValid, "the %s certificate is valid only from %s (verification time %s)", c.name, c.cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if now.After(c.cert.NotAfter) {
			vd.refuse(CodeCertExpired, "the %s certificate expired at %s (verification time %s)", c.name, c.cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
}

// checkConsistency mirrors go-sev-guest's validateTcb with provisional
// firmware permitted, and its CHIP_ID check, with one reason each.
func checkConsistency(vd *Verdict, r *spb.Report, e *chainEntry) {
	le := func(a, b uint64) bool {
		for i := 0; i < 8; i++ {
			if uint8(a>>(8*i)) > uint8(b>>(8*i)) {
				return false
			}
		}
		return true
	}
	rep, cur, com := r.GetReportedTcb(), r.GetCurrentTcb(), r.GetCommittedTcb()
	if rep != e.tcb {
		vd.refuse(CodeTCBInconsistent, "REPORTED_TCB %#x differs from the TCB %#x of the %s certificate", rep, e.tcb, e.signer)
	}
	if !le(e.tcb, cur) {
		vd.refuse(CodeTCBInconsistent, "the %s certificate's TCB %#x is above CURRENT_TCB %#x", e.signer, e.tcb, cur)
	}
	if !le(com, cur) {
		vd.refuse(CodeTCBInconsistent, "COMMITTED_TCB %#x is above CURRENT_TCB %#x", com, cur)
	}
	if e.signer == VCEK {
		chip := r.GetChipId()
		if !allZero(chip) && !bytes.Equal(chip, e.hwid) {
			vd.refuse(CodeChipIDMismatch, "CHIP_ID %s… is not the hardware ID %s… of the VCEK", shortHex(chip), shortHex(e.hwid))
		}
	}
}

func (v *Verifier) checkRevocation(vd *Verdict, e *chainEntry, now time.Time, stale CRLPolicy) {
	v.crlMu.RLock()
	info := v.crls[e.product]
	v.crlMu.RUnlock()
	if info == nil || now.Sub(info.thisUpdate) > v.crlMaxAge || now.Before(info.thisUpdate) {
		if stale == CRLRefuse {
			vd.refuse(CodeRevocationNotChecked, "revocation not checked: the certificate cache has no %s CRL newer than %s, and the policy refuses evidence without one; import AMD's current CRL", e.product, fmtAge(v.crlMaxAge))
			return
		}
		vd.warn(CodeRevocationNotChecked, "revocation not checked: the certificate cache has no %s CRL newer than %s", e.product, fmtAge(v.crlMaxAge))
		return
	}
	vd.RevocationChecked = true
	ica := e.root.intermediate(e.signer)
	for _, c := range []*x509.Certificate{ica, e.cert} {
		if c != nil && info.revoked[c.SerialNumber.String()] {
			vd.refuse(CodeCertRevoked, "AMD's %s CRL revokes the certificate %q (serial %s)", e.product, c.Subject.CommonName, c.SerialNumber.Text(16))
		}
	}
}

// checkReference applies the officer's reference values, one reason per failure.
func refLabel(exp Expectation) string {
	switch {
	case exp.Image != "" && exp.ReferenceVersion > 0:
		return fmt.Sprintf(" of image %s (version %d)", exp.Image, exp.ReferenceVersion)
	case exp.Image != "":
		return " of image " + exp.Image
	}
	return ""
}

func checkReference(vd *Verdict, r *spb.Report, p Product, ref *ReferenceValues, label string) {
	c := vd.Claims
	if ref.Product != Unknown && p != ref.Product {
		vd.refuse(CodeWrongProduct, "the report comes from %s, the reference values allow only %s", orAny(p), ref.Product)
	}
	if !containsHex(ref.Measurements, r.GetMeasurement()) {
		vd.refuse(CodeMeasurement, "measurement %s… is not in the approved set%s (%d approved)", shortHex(r.GetMeasurement()), label, len(ref.Measurements))
	}
	got := c.ReportedTCB
	for _, m := range []struct {
		name     string
		have, lo uint8
	}{
		{"bootloader", got.Bootloader, ref.MinimumTCB.Bootloader},
		{"TEE", got.TEE, ref.MinimumTCB.TEE},
		{"SNP firmware", got.SNP, ref.MinimumTCB.SNP},
		{"microcode", got.Microcode, ref.MinimumTCB.Microcode},
		{"FMC", got.FMC, ref.MinimumTCB.FMC},
	} {
		if m.have < m.lo {
			vd.refuse(CodeTCBBelowMinimum, "%s security patch level %d is below the minimum %d", m.name, m.have, m.lo)
		}
	}
	if c.Policy.Debug {
		vd.refuse(CodeDebug, "the guest policy allows debugging: the host can read the guest's memory")
	}
	if c.Policy.MigrationAgent && !ref.AllowMigrationAgent {
		vd.refuse(CodeMigrationAgent, "the guest policy allows a migration agent, which the reference values do not")
	}
	if c.Policy.SMT && !ref.AllowSMT {
		vd.refuse(CodeSMT, "the guest policy allows SMT, which the reference values do not")
	}
	if ref.RequireSingleSocket && !c.Policy.SingleSocket {
		vd.refuse(CodeSingleSocket, "the guest policy does not restrict the guest to a single socket")
	}
	allowed := ref.AllowedVMPLs
	if len(allowed) == 0 {
		allowed = []uint32{0}
	}
	okVMPL := false
	for _, a := range allowed {
		okVMPL = okVMPL || a == c.VMPL
	}
	if !okVMPL {
		vd.refuse(CodeVMPL, "the report was requested at VMPL %d; allowed: %v", c.VMPL, allowed)
	}
	if len(ref.HostData) > 0 && !bytes.Equal(ref.HostData, r.GetHostData()) {
		vd.refuse(CodeHostData, "HOST_DATA %s… is not the approved %s…", shortHex(r.GetHostData()), shortHex(ref.HostData))
	}
	if len(ref.FamilyID) > 0 && !bytes.Equal(ref.FamilyID, r.GetFamilyId()) {
		vd.refuse(CodeFamilyID, "FAMILY_ID %s is not the approved %s", Hex(r.GetFamilyId()), ref.FamilyID)
	}
	if len(ref.ImageID) > 0 && !bytes.Equal(ref.ImageID, r.GetImageId()) {
		vd.refuse(CodeImageID, "IMAGE_ID %s is not the approved %s", Hex(r.GetImageId()), ref.ImageID)
	}
	if len(ref.IDKeyDigests) > 0 && !containsHex(ref.IDKeyDigests, r.GetIdKeyDigest()) {
		vd.refuse(CodeIDKey, "ID key digest %s… is not approved", shortHex(r.GetIdKeyDigest()))
	}
	if len(ref.AuthorKeyDigests) > 0 && (!c.AuthorKeyEn || !containsHex(ref.AuthorKeyDigests, r.GetAuthorKeyDigest())) {
		vd.refuse(CodeAuthorKey, "author key digest %s… is not approved", shortHex(r.GetAuthorKeyDigest()))
	}
	if r.GetGuestSvn() < ref.MinimumGuestSVN {
		vd.refuse(CodeGuestSVN, "GUEST_SVN %d is below the minimum %d", r.GetGuestSvn(), ref.MinimumGuestSVN)
	}
	// Allowed chips are matched on the VCEK's hardware ID: the report's
	// CHIP_ID may be masked, and a VLEK vouches for no chip at all.
	switch {
	case len(ref.AllowedChipIDs) == 0:
	case len(vd.HardwareID) == 0 && c.Signer == VLEK:
		vd.refuse(CodeChipNotAllowed, "the report is signed by a VLEK, which names no chip; the reference values allow only %d chips", len(ref.AllowedChipIDs))
	case len(vd.HardwareID) == 0:
		vd.refuse(CodeChipNotAllowed, "the chip is unknown (no verified VCEK); the reference values allow only %d chips", len(ref.AllowedChipIDs))
	case !containsHex(ref.AllowedChipIDs, vd.HardwareID):
		vd.refuse(CodeChipNotAllowed, "chip %s… is not one of the %d allowed chips", shortHex(vd.HardwareID), len(ref.AllowedChipIDs))
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func shortHex(b []byte) string {
	s := Hex(b).String()
	if len(s) > 16 {
		s = s[:16]
	}
	return s
}

func orAny(p Product) string {
	if p == Unknown {
		return "AMD"
	}
	return string(p)
}

func fmtAge(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
