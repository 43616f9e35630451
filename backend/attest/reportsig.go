package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/verify"

	"keyholder/backend/attest/internal/p384"
)

// maxKeyTables bounds the signing keys of one chain cache that get a p384
// table (about 340 KiB each, so at most 43 MiB). Keys beyond it are
// checked by go-sev-guest alone, as cold ones are: slower, never wrong.
// Tables are not evicted by use, so a fleet with more chips than this
// cannot make them thrash (be rebuilt over and over).
const maxKeyTables = 128

// reportKey is the warm report-signature check of a cached chain entry.
type reportKey struct {
	mu      sync.Mutex
	budget  *atomic.Int64 // the chain cache's count of tables; nil: no table
	table   *p384.PublicKey
	tried   bool
	evicted bool
}

// verifyReport checks the report's signature with the entry's certificate.
// After the chain verified once (go-sev-guest's verify.SnpReportSignature
// then checked the report too), later reports signed by the same key are
// checked with the key's p384 table: the same format and algorithm checks
// as go-sev-guest, then ECDSA P-384 over SHA-384 of the signed part, about
// nine times faster than crypto/ecdsa here (bench/attest.sh). It takes only
// a report of exactly ReportSize bytes, whatever its callers checked: the
// slicing below relies on it, and bytes past the signature are not signed.
func (e *chainEntry) verifyReport(raw []byte) error {
	if len(raw) != abi.ReportSize {
		return fmt.Errorf("report signature: report is %d bytes, an SEV-SNP report is %d", len(raw), abi.ReportSize)
	}
	t := e.key.get(e)
	if t == nil {
		return verify.SnpReportSignature(raw, e.cert)
	}
	if err := abi.ValidateReportFormat(raw); err != nil {
		return fmt.Errorf("attestation report format error: %v", err)
	}
	if algo := abi.SignatureAlgo(raw); algo != abi.SignEcdsaP384Sha384 {
		return fmt.Errorf("unknown SignatureAlgo: %d", algo)
	}
	signed := abi.SignedComponent(raw)
	sig := raw[len(signed):]
	r, s := abi.AmdBigInt(sig[0:0x48]), abi.AmdBigInt(sig[0x48:0x90])
	h := sha512.Sum384(signed)
	if !t.Verify(h[:], r, s) {
		return errors.New("report signature verification error: ECDSA verification failure")
	}
	return nil
}

// get returns the key's table, making it on first use while the budget
// allows; nil means: check with go-sev-guest.
func (k *reportKey) get(e *chainEntry) *p384.PublicKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tried || k.evicted || k.budget == nil {
		return k.table
	}
	k.tried = true
	pub, ok := e.cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil
	}
	if k.budget.Add(1) > maxKeyTables {
		k.budget.Add(-1)
		return nil
	}
	t, err := p384.NewPublicKey(pub)
	if err != nil {
		k.budget.Add(-1)
		return nil
	}
	k.table = t
	return t
}

// drop gives the table back when its entry leaves the chain cache.
func (k *reportKey) drop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.table != nil {
		k.table = nil
		k.budget.Add(-1)
	}
	k.evicted = true
}
