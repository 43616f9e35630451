// Package sim makes realistic SEV-SNP evidence without hardware:
// attestation reports signed by a simulated AMD root for Milan, Genoa and
// Turin, with chosen measurement, REPORT_DATA, chip, TCB, policy and signer
// (VCEK or VLEK). vTPM attestations from go-tpm-tools' TPM simulator live in
// the subpackage simtpm, which needs cgo; this package does not.
//
// The simulated root is derived deterministically from Seed, so a console
// started with its development flag and a separately started simulated agent
// agree on it without sharing files. Its private keys are public by design,
// exactly like go-sev-guest's test keys: evidence it signs proves nothing.
// The console trusts it only through attest.Options.TrustSimulatedRoot, and
// labels every verdict under it as simulated.
//
// The verification and release paths never import this package; only the
// demo, the agent's --simulate mode, the wiring in main and tests do.
package sim

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"

	"keyholder/backend/attest"
)

// Seed is the documented seed of the simulated AMD root. Every simulated key
// is derived from it with SHA-512 in counter mode (see derive.go): the ARK,
// ASK and ASVK (RSA-4096, shared by the three products, whose certificates
// differ by name), VCEKs per chip and TCB, and VLEKs per product and TCB.
const Seed = "keyholder simulated AMD root v1"

// CSPID is the cloud provider name in simulated VLEK certificates.
const CSPID = "keyholder-simulated-csp"

// Certificate validity of the simulated chain. Fixed, so that certificates
// are byte-identical everywhere.
var (
	RootNotBefore = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	RootNotAfter  = RootNotBefore.AddDate(25, 0, 0)
	// KeyNotAfter is when simulated VCEK and VLEK certificates expire.
	KeyNotAfter = RootNotBefore.AddDate(7, 0, 0)
)

// AMDRoot is the simulated AMD key hierarchy.
type AMDRoot struct {
	ark, ask, asvk *rsa.PrivateKey
	products       map[attest.Product]*productRoot

	mu    sync.Mutex
	vleks map[string]*signingKey
}

type productRoot struct {
	ark, ask, asvk *x509.Certificate
}

// signingKey is a VCEK or VLEK with its certificate.
type signingKey struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

var (
	rootOnce sync.Once
	root     *AMDRoot
	rootErr  error
)

// Root returns the simulated AMD root, derived from Seed on first use (about
// two seconds: three RSA-4096 keys) and cached for the life of the process.
// It panics only if derivation fails, which would be a bug.
func Root() *AMDRoot {
	rootOnce.Do(func() { root, rootErr = newRoot() })
	if rootErr != nil {
		panic("sim: derive simulated AMD root: " + rootErr.Error())
	}
	return root
}

func newRoot() (*AMDRoot, error) {
	r := &AMDRoot{products: map[attest.Product]*productRoot{}, vleks: map[string]*signingKey{}}
	var err error
	if r.ark, err = deriveRSA(4096, Seed+"/ARK"); err != nil {
		return nil, err
	}
	if r.ask, err = deriveRSA(4096, Seed+"/ASK"); err != nil {
		return nil, err
	}
	if r.asvk, err = deriveRSA(4096, Seed+"/ASVK"); err != nil {
		return nil, err
	}
	for i, p := range attest.Products {
		pr := &productRoot{}
		line := string(p)
		serial := big.NewInt(int64(0x5e0000 + i))
		arkName := amdName("ARK-"+line, serial)
		pr.ark, err = r.certify(&x509.Certificate{
			SerialNumber: serial, Subject: arkName, Issuer: arkName,
			NotBefore: RootNotBefore, NotAfter: RootNotAfter,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, IsCA: true, BasicConstraintsValid: true,
			CRLDistributionPoints: []string{kds.CrlLinkByKey(line, abi.VcekReportSigner)},
		}, nil, &r.ark.PublicKey, r.ark)
		if err != nil {
			return nil, err
		}
		pr.ask, err = r.certify(&x509.Certificate{
			SerialNumber: new(big.Int).Add(serial, big.NewInt(0x100)), Subject: amdName("SEV-"+line, new(big.Int).Add(serial, big.NewInt(0x100))),
			NotBefore: RootNotBefore, NotAfter: RootNotAfter,
			KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
			CRLDistributionPoints: []string{kds.CrlLinkByKey(line, abi.VcekReportSigner)},
		}, pr.ark, &r.ask.PublicKey, r.ark)
		if err != nil {
			return nil, err
		}
		pr.asvk, err = r.certify(&x509.Certificate{
			SerialNumber: new(big.Int).Add(serial, big.NewInt(0x200)), Subject: amdName("SEV-VLEK-"+line, new(big.Int).Add(serial, big.NewInt(0x200))),
			NotBefore: RootNotBefore, NotAfter: RootNotAfter,
			KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
			CRLDistributionPoints: []string{kds.CrlLinkByKey(line, abi.VlekReportSigner)},
		}, pr.ark, &r.asvk.PublicKey, r.ark)
		if err != nil {
			return nil, err
		}
		r.products[p] = pr
	}
	return r, nil
}

func amdName(cn string, serial *big.Int) pkix.Name {
	return pkix.Name{
		Organization:       []string{"Advanced Micro Devices"},
		Country:            []string{"US"},
		OrganizationalUnit: []string{"Engineering"},
		Locality:           []string{"Santa Clara"},
		Province:           []string{"CA"},
		SerialNumber:       fmt.Sprintf("%x", serial),
		CommonName:         cn,
	}
}

// certify signs tmpl with signer (RSA-PSS SHA-384, deterministic salt);
// parent nil means self-signed.
func (r *AMDRoot) certify(tmpl, parent *x509.Certificate, pub any, signer *rsa.PrivateKey) (*x509.Certificate, error) {
	tmpl.Version = 3
	tmpl.SignatureAlgorithm = x509.SHA384WithRSAPSS
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(newStream("keyholder sim x509", tmpl.Subject.CommonName), tmpl, parent, pub, pssSigner{signer})
	if err != nil {
		return nil, fmt.Errorf("certify %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// TrustedRoots returns the simulated roots for attest.Options.SimulatedRoots.
func (r *AMDRoot) TrustedRoots() []*attest.Root {
	var out []*attest.Root
	for _, p := range attest.Products {
		pr := r.products[p]
		out = append(out, &attest.Root{Product: p, ARK: pr.ark, ASK: pr.ask, ASVK: pr.asvk, Simulated: true})
	}
	return out
}

// ARK, ASK and ASVK return a product's simulated certificates.
func (r *AMDRoot) ARK(p attest.Product) *x509.Certificate  { return r.products[p].ark }
func (r *AMDRoot) ASK(p attest.Product) *x509.Certificate  { return r.products[p].ask }
func (r *AMDRoot) ASVK(p attest.Product) *x509.Certificate { return r.products[p].asvk }

// CertChainPEM is the product's ASK then ARK in PEM, the way AMD's key
// server serves cert_chain (and snpguest writes it).
func (r *AMDRoot) CertChainPEM(p attest.Product) []byte {
	return append(pemCert(r.products[p].ask.Raw), pemCert(r.products[p].ark.Raw)...)
}

// CRL returns a CRL for product p signed by its simulated ARK, revoking
// the given serial numbers, issued at thisUpdate and valid for 30 days.
func (r *AMDRoot) CRL(p attest.Product, thisUpdate time.Time, revoked ...*big.Int) ([]byte, error) {
	pr := r.products[p]
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate.Add(-time.Hour)})
	}
	tmpl := &x509.RevocationList{
		SignatureAlgorithm:        x509.SHA384WithRSAPSS,
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(thisUpdate.Unix()),
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(30 * 24 * time.Hour),
	}
	return x509.CreateRevocationList(newStream("keyholder sim crl", string(p)), tmpl, pr.ark, pssSigner{r.ark})
}

// kdsExtensions are AMD's KDS certificate extensions (KDS spec, VCEK
// certificate): struct version, product name, the eight TCB security patch
// levels, and the hardware ID (VCEK) or the CSP ID (VLEK). The TCB bytes are
// laid out the way go-sev-guest composes them, so that its validation sees
// REPORTED_TCB equal to the certificate's TCB for every product.
func kdsExtensions(productName string, raw uint64, hwid []byte, cspID string) []pkix.Extension {
	parts := kds.DecomposeTCBVersion(kds.TCBVersion(raw))
	i := func(v uint8) []byte { b, _ := asn1.Marshal(int(v)); return b }
	zero, _ := asn1.Marshal(0)
	name, _ := asn1.MarshalWithParams(productName, "ia5")
	exts := []pkix.Extension{
		{Id: kds.OidStructVersion, Value: zero},
		{Id: kds.OidProductName1, Value: name},
		{Id: kds.OidBlSpl, Value: i(parts.BlSpl)},
		{Id: kds.OidTeeSpl, Value: i(parts.TeeSpl)},
		{Id: kds.OidSnpSpl, Value: i(parts.SnpSpl)},
		{Id: kds.OidSpl4, Value: i(parts.Spl4)},
		{Id: kds.OidSpl5, Value: i(parts.Spl5)},
		{Id: kds.OidSpl6, Value: i(parts.Spl6)},
		{Id: kds.OidSpl7, Value: i(parts.Spl7)},
		{Id: kds.OidUcodeSpl, Value: i(parts.UcodeSpl)},
	}
	if hwid != nil {
		h, _ := asn1.Marshal(hwid)
		exts = append(exts, pkix.Extension{Id: kds.OidHwid, Value: h})
	} else {
		c, _ := asn1.MarshalWithParams(cspID, "ia5")
		exts = append(exts, pkix.Extension{Id: kds.OidCspID, Value: c})
	}
	return exts
}

// endorsementCert issues a VCEK (hwid set) or VLEK certificate.
func (r *AMDRoot) endorsementCert(p attest.Product, key *ecdsa.PrivateKey, raw uint64, hwid []byte) (*x509.Certificate, error) {
	pr := r.products[p]
	kind, parent, signer, name := "VCEK", pr.ask, r.ask, steppingName(p)
	if hwid == nil {
		kind, parent, signer, name = "VLEK", pr.asvk, r.asvk, string(p)
	}
	serial := new(big.Int).SetBytes(newStreamBytes(16, "keyholder sim serial", kind, string(p), fmt.Sprint(raw), string(hwid)))
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         amdName("SEV-"+kind, big.NewInt(0)),
		NotBefore:       RootNotBefore,
		NotAfter:        KeyNotAfter,
		ExtraExtensions: kdsExtensions(name, raw, hwid, CSPID),
	}
	tmpl.Subject.SerialNumber = fmt.Sprintf("%x", serial)
	return r.certify(tmpl, parent, &key.PublicKey, signer)
}

func newStreamBytes(n int, parts ...string) []byte {
	b := make([]byte, n)
	newStream(parts...).Read(b)
	b[0] &= 0x7f
	return b
}

// steppingName is the VCEK product name, e.g. "Milan-B1".
func steppingName(p attest.Product) string {
	if p == attest.Turin {
		return "Turin-B0"
	}
	return string(p) + "-B1"
}

// vlek returns the simulated cloud provider's VLEK for product p at TCB raw.
func (r *AMDRoot) vlek(p attest.Product, raw uint64) (*signingKey, error) {
	id := fmt.Sprintf("%s/%x", p, raw)
	r.mu.Lock()
	defer r.mu.Unlock()
	if k := r.vleks[id]; k != nil {
		return k, nil
	}
	key, err := deriveP384(Seed + "/VLEK/" + id)
	if err != nil {
		return nil, err
	}
	cert, err := r.endorsementCert(p, key, raw, nil)
	if err != nil {
		return nil, err
	}
	k := &signingKey{key: key, cert: cert}
	r.vleks[id] = k
	return k, nil
}

// VLEKCert is the simulated VLEK certificate (DER) for product p at TCB t.
func (r *AMDRoot) VLEKCert(p attest.Product, t attest.TCB) ([]byte, error) {
	k, err := r.vlek(p, t.Encode(p))
	if err != nil {
		return nil, err
	}
	return k.cert.Raw, nil
}

func productOK(p attest.Product) error {
	for _, q := range attest.Products {
		if p == q {
			return nil
		}
	}
	return fmt.Errorf("unknown product %q", p)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
