package attest

import (
	"crypto/x509"
	_ "embed"
	"sync"

	"github.com/google/go-tpm-tools/server"
)

var (
	//go:embed gcecerts/gcp_ek_ak_ca_root.crt
	gcpCASRoot []byte
	//go:embed gcecerts/gcp_ek_ak_ca_intermediate_v3.crt
	gcpCASIntermediate []byte
	//go:embed gcecerts/tpm_ek_intermediate_3.crt
	gceEKIntermediate3 []byte

	gceOnce          sync.Once
	gceRoots, gceInt []*x509.Certificate
)

// gceCAs are Google's vTPM EK/AK roots and intermediates: those go-tpm-tools
// exports plus the newer CAS hierarchy it embeds without exporting.
func gceCAs() (roots, intermediates []*x509.Certificate) {
	gceOnce.Do(func() {
		gceRoots = append(gceRoots, server.GceEKRoots...)
		gceInt = append(gceInt, server.GceEKIntermediates...)
		if c, err := x509.ParseCertificate(gcpCASRoot); err == nil {
			gceRoots = append(gceRoots, c)
		}
		for _, der := range [][]byte{gcpCASIntermediate, gceEKIntermediate3} {
			if c, err := x509.ParseCertificate(der); err == nil {
				gceInt = append(gceInt, c)
			}
		}
	})
	return gceRoots, gceInt
}
