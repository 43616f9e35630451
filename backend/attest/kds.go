package attest

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
)

// Fetcher gets a URL's body. The console never fetches while verifying;
// only the explicit `keyholder attest fetch-certs` does, to fill the cache.
type Fetcher interface {
	Fetch(ctx context.Context, url string) ([]byte, error)
}

// HTTPFetcher fetches over HTTPS with a timeout and a size limit.
type HTTPFetcher struct {
	Client *http.Client
}

// Fetch implements Fetcher.
func (f HTTPFetcher) Fetch(ctx context.Context, url string) ([]byte, error) {
	c := f.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 4<<20))
}

// KDSRequest names what to fetch from AMD's Key Distribution Service.
type KDSRequest struct {
	Product Product
	Signer  Signer // VCEK (default) or VLEK (chain and CRL only: VLEKs come from the cloud provider)
	ChipID  []byte // VCEK only
	TCB     uint64 // REPORTED_TCB, VCEK only
	// BaseURL replaces AMD's KDS address (a mirror); empty means AMD's.
	BaseURL string
}

// KDSResult is what FetchKDS got: certificates (DER) and the product CRL.
type KDSResult struct {
	Certs [][]byte
	CRL   []byte
	URLs  []string
}

// FetchKDS gets the product's ASK/ASVK and ARK, the VCEK for a chip at a
// TCB, and the product CRL, the way AMD's KDS serves them.
func FetchKDS(ctx context.Context, f Fetcher, r KDSRequest) (*KDSResult, error) {
	if _, err := ParseProduct(string(r.Product)); err != nil {
		return nil, err
	}
	key := abi.VcekReportSigner
	if r.Signer == VLEK {
		key = abi.VlekReportSigner
	}
	line := string(r.Product)
	rewrite := func(u string) string {
		if r.BaseURL == "" {
			return u
		}
		if i := strings.Index(u, "/vcek/"); i >= 0 {
			return strings.TrimRight(r.BaseURL, "/") + u[i:]
		}
		if i := strings.Index(u, "/vlek/"); i >= 0 {
			return strings.TrimRight(r.BaseURL, "/") + u[i:]
		}
		return u
	}
	res := &KDSResult{}
	get := func(u string) ([]byte, error) {
		u = rewrite(u)
		res.URLs = append(res.URLs, u)
		b, err := f.Fetch(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", u, err)
		}
		return b, nil
	}
	chain, err := get(kds.ProductCertChainURL(key, line))
	if err != nil {
		return nil, err
	}
	ders, err := ParseCertData(chain)
	if err != nil {
		return nil, fmt.Errorf("cert_chain: %w", err)
	}
	res.Certs = append(res.Certs, ders...)
	if key == abi.VcekReportSigner && len(r.ChipID) > 0 {
		if len(r.ChipID) != ChipIDSize {
			return nil, fmt.Errorf("chip ID is %d bytes, want %d", len(r.ChipID), ChipIDSize)
		}
		vcek, err := get(kds.VCEKCertURL(line, r.ChipID, kds.TCBVersion(r.TCB)))
		if err != nil {
			return nil, err
		}
		ders, err := ParseCertData(vcek)
		if err != nil {
			return nil, fmt.Errorf("VCEK: %w", err)
		}
		res.Certs = append(res.Certs, ders...)
	}
	crl, err := get(kds.CrlLinkByKey(line, key))
	if err != nil {
		return nil, err
	}
	if b, _ := pem.Decode(crl); b != nil && b.Type == "X509 CRL" {
		crl = b.Bytes
	}
	res.CRL = crl
	return res, nil
}
