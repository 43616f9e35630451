package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/google/go-sev-guest/kds"
	"github.com/google/go-sev-guest/verify/trust"
)

// Root is a trusted AMD root for one product: the self-signed ARK, the ASK
// that certifies VCEKs and the ASVK that certifies VLEKs (optional).
type Root struct {
	Product Product
	ARK     *x509.Certificate
	ASK     *x509.Certificate
	ASVK    *x509.Certificate
	// Simulated marks the development root. The Verifier only honours a
	// simulated root given through Options.SimulatedRoots.
	Simulated bool
}

// check verifies the root's own signatures: ARK self-signed, ASK and ASVK by ARK.
func (r *Root) check() error {
	if r == nil || r.ARK == nil || r.ASK == nil {
		return fmt.Errorf("root needs an ARK and an ASK")
	}
	if _, err := ParseProduct(string(r.Product)); err != nil {
		return err
	}
	if err := r.ARK.CheckSignatureFrom(r.ARK); err != nil {
		return fmt.Errorf("%s ARK is not self-signed: %w", r.Product, err)
	}
	if err := r.ASK.CheckSignatureFrom(r.ARK); err != nil {
		return fmt.Errorf("%s ASK is not signed by its ARK: %w", r.Product, err)
	}
	if r.ASVK != nil {
		if err := r.ASVK.CheckSignatureFrom(r.ARK); err != nil {
			return fmt.Errorf("%s ASVK is not signed by its ARK: %w", r.Product, err)
		}
	}
	return nil
}

// Fingerprint is SHA-256 of the ARK, in hex.
func (r *Root) Fingerprint() string {
	s := sha256.Sum256(r.ARK.Raw)
	return Hex(s[:]).String()
}

func (r *Root) trust() *trust.AMDRootCerts {
	return &trust.AMDRootCerts{
		Product:      string(r.Product),
		ProductLine:  string(r.Product),
		ProductCerts: &trust.ProductCerts{Ark: r.ARK, Ask: r.ASK, Asvk: r.ASVK},
	}
}

// intermediate is the certificate that issues keys of signer s.
func (r *Root) intermediate(s Signer) *x509.Certificate {
	if s == VLEK {
		return r.ASVK
	}
	return r.ASK
}

// holds reports whether der is one of this root's certificates.
func (r *Root) holds(der []byte) bool {
	for _, c := range []*x509.Certificate{r.ARK, r.ASK, r.ASVK} {
		if c != nil && bytes.Equal(c.Raw, der) {
			return true
		}
	}
	return false
}

var (
	prodOnce  sync.Once
	prodRoots []*Root
	prodErr   error
)

// ProductionRoots are AMD's ARK, ASK and ASVK for Milan, Genoa and Turin as
// go-sev-guest embeds them.
func ProductionRoots() ([]*Root, error) {
	prodOnce.Do(func() {
		for _, p := range []struct {
			product    Product
			vcek, vlek []byte
		}{
			{Milan, trust.AskArkMilanVcekBytes, trust.AskArkMilanVlekBytes},
			{Genoa, trust.AskArkGenoaVcekBytes, trust.AskArkGenoaVlekBytes},
			{Turin, trust.AskArkTurinVcekBytes, trust.AskArkTurinVlekBytes},
		} {
			ask, ark, err := parseChainPEM(p.vcek)
			if err != nil {
				prodErr = fmt.Errorf("embedded %s cert_chain: %w", p.product, err)
				return
			}
			r := &Root{Product: p.product, ARK: ark, ASK: ask}
			if len(p.vlek) > 0 {
				asvk, _, err := parseChainPEM(p.vlek)
				if err == nil {
					r.ASVK = asvk
				}
			}
			prodRoots = append(prodRoots, r)
		}
	})
	return prodRoots, prodErr
}

func parseChainPEM(b []byte) (ask, ark *x509.Certificate, err error) {
	askDER, arkDER, err := kds.ParseProductCertChain(b)
	if err != nil {
		return nil, nil, err
	}
	if ask, err = x509.ParseCertificate(askDER); err != nil {
		return nil, nil, err
	}
	if ark, err = x509.ParseCertificate(arkDER); err != nil {
		return nil, nil, err
	}
	return ask, ark, nil
}
