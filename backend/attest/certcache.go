package attest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"

	"keyholder/backend/store"
)

// CertCache is the console's offline store of AMD certificates and CRLs in
// SQLite. Certificates are stored as received and checked against the
// trusted roots whenever they are used; CRLs are stored only after their
// signature checked (Verifier.ImportCRL).
type CertCache struct{ db *store.DB }

// NewCertCache returns the certificate cache over db.
func NewCertCache(db *store.DB) *CertCache { return &CertCache{db: db} }

// CertInfo describes a cached certificate.
type CertInfo struct {
	Fingerprint string    `json:"fingerprint"`
	Kind        string    `json:"kind"` // ark, ask, asvk, vcek, vlek
	Product     Product   `json:"product"`
	ChipID      string    `json:"chip_id,omitempty"`
	TCB         string    `json:"tcb,omitempty"`
	Subject     string    `json:"subject"`
	NotAfter    time.Time `json:"not_after"`
	Source      string    `json:"source"`
}

// ClassifyCert tells what AMD certificate der is: its kind, product, and for
// VCEKs and VLEKs the hardware ID and TCB from the KDS extensions.
func ClassifyCert(der []byte) (CertInfo, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return CertInfo{}, fmt.Errorf("%w: certificate: %v", ErrMalformed, err)
	}
	fp := sha256.Sum256(der)
	info := CertInfo{Fingerprint: hex.EncodeToString(fp[:]), Subject: c.Subject.CommonName, NotAfter: c.NotAfter.UTC()}
	cn := c.Subject.CommonName
	line := func(s string) (Product, error) { return ParseProduct(s) }
	switch {
	case strings.HasPrefix(cn, "ARK-"):
		info.Kind = "ark"
		info.Product, err = line(strings.TrimPrefix(cn, "ARK-"))
	case strings.HasPrefix(cn, "SEV-VLEK-"):
		info.Kind = "asvk"
		info.Product, err = line(strings.TrimPrefix(cn, "SEV-VLEK-"))
	case cn == "SEV-VCEK" || cn == "SEV-VLEK":
		key := abi.VcekReportSigner
		info.Kind = "vcek"
		if cn == "SEV-VLEK" {
			key, info.Kind = abi.VlekReportSigner, "vlek"
		}
		exts, xerr := kds.CertificateExtensions(c, key)
		if xerr != nil {
			return CertInfo{}, fmt.Errorf("%w: %s certificate extensions: %v", ErrMalformed, strings.ToUpper(info.Kind), xerr)
		}
		name, _, _ := strings.Cut(exts.ProductName, "-")
		info.Product, err = line(name)
		info.TCB = fmt.Sprintf("%016x", uint64(exts.TCBVersion))
		if exts.HWID != nil {
			info.ChipID = hex.EncodeToString(exts.HWID)
		}
	case strings.HasPrefix(cn, "SEV-"):
		info.Kind = "ask"
		info.Product, err = line(strings.TrimPrefix(cn, "SEV-"))
	default:
		return CertInfo{}, fmt.Errorf("%w: %q is not an AMD SEV certificate", ErrMalformed, cn)
	}
	if err != nil {
		return CertInfo{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return info, nil
}

// PutCert stores an AMD certificate (DER); source names where it came from.
func (c *CertCache) PutCert(ctx context.Context, der []byte, source string) (CertInfo, error) {
	if len(der) > MaxCertSize {
		return CertInfo{}, fmt.Errorf("%w: certificate is %d bytes, the limit is %d", ErrMalformed, len(der), MaxCertSize)
	}
	info, err := ClassifyCert(der)
	if err != nil {
		return CertInfo{}, err
	}
	info.Source = source
	_, err = c.db.ExecContext(ctx, `INSERT INTO amd_certs(fingerprint, kind, product, chip_id, tcb, subject, not_after, der, source, added_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(fingerprint) DO NOTHING`,
		info.Fingerprint, info.Kind, string(info.Product), info.ChipID, info.TCB, info.Subject, store.Time(info.NotAfter), der, source, store.Time(c.db.Now()))
	if err != nil {
		return CertInfo{}, fmt.Errorf("store certificate: %w", store.Classify(err))
	}
	return info, nil
}

// SigningCerts implements CertSource.
func (c *CertCache) SigningCerts(ctx context.Context, p Product, s Signer, chipID []byte, reportedTCB uint64) ([][]byte, error) {
	var rows *sql.Rows
	var err error
	tcb := fmt.Sprintf("%016x", reportedTCB)
	if s == VLEK {
		rows, err = c.db.QueryContext(ctx, `SELECT der FROM amd_certs WHERE kind = 'vlek' AND product = ? AND tcb = ? ORDER BY added_at DESC LIMIT 16`, string(p), tcb)
	} else {
		rows, err = c.db.QueryContext(ctx, `SELECT der FROM amd_certs WHERE kind = 'vcek' AND product = ? AND chip_id = ? AND tcb = ? ORDER BY added_at DESC LIMIT 4`, string(p), hex.EncodeToString(chipID), tcb)
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", s, store.Classify(err))
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var der []byte
		if err := rows.Scan(&der); err != nil {
			return nil, err
		}
		out = append(out, der)
	}
	return out, rows.Err()
}

// CRLs implements CertSource.
func (c *CertCache) CRLs(ctx context.Context) ([][]byte, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT der FROM amd_crls ORDER BY this_update`)
	if err != nil {
		return nil, fmt.Errorf("read CRLs: %w", store.Classify(err))
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var der []byte
		if err := rows.Scan(&der); err != nil {
			return nil, err
		}
		out = append(out, der)
	}
	return out, rows.Err()
}

// List returns the cached certificates, by product and kind.
func (c *CertCache) List(ctx context.Context) ([]CertInfo, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT fingerprint, kind, product, chip_id, tcb, subject, not_after, source FROM amd_certs ORDER BY product, kind, added_at`)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", store.Classify(err))
	}
	defer rows.Close()
	out := []CertInfo{}
	for rows.Next() {
		var i CertInfo
		var p, na string
		if err := rows.Scan(&i.Fingerprint, &i.Kind, &p, &i.ChipID, &i.TCB, &i.Subject, &na, &i.Source); err != nil {
			return nil, err
		}
		i.Product = Product(p)
		i.NotAfter, _ = store.ParseTime(na)
		out = append(out, i)
	}
	return out, rows.Err()
}

// ErrUntrustedCRL is returned for a CRL no trusted ARK signed.
var ErrUntrustedCRL = errors.New("CRL is not signed by a trusted AMD root")

// ImportCRL checks that a trusted ARK signed der, stores it in cache and
// applies it to this verifier when the verifier reads its CRLs from cache.
func (v *Verifier) ImportCRL(ctx context.Context, cache *CertCache, der []byte, source string) (Product, error) {
	p, crl, err := v.checkCRL(der)
	if err != nil {
		if strings.Contains(err.Error(), "parse") {
			return Unknown, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return Unknown, ErrUntrustedCRL
	}
	fp := sha256.Sum256(der)
	_, err = cache.db.ExecContext(ctx, `INSERT INTO amd_crls(fingerprint, product, this_update, next_update, revoked, der, source, added_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(fingerprint) DO NOTHING`,
		hex.EncodeToString(fp[:]), string(p), store.Time(crl.ThisUpdate), store.Time(crl.NextUpdate), len(crl.RevokedCertificateEntries), der, source, store.Time(cache.db.Now()))
	if err != nil {
		return Unknown, fmt.Errorf("store CRL: %w", store.Classify(err))
	}
	if v.certs == nil {
		return p, nil
	}
	return p, v.ReloadCRLs(ctx)
}
