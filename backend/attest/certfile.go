package attest

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ParseCertData reads certificates as snpguest and AMD's key server write
// them: one DER certificate, or one or more PEM CERTIFICATE blocks (a
// cert_chain bundle holds the ASK then the ARK). It returns DER.
func ParseCertData(data []byte) ([][]byte, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("empty file")
	}
	if len(data) > 4*MaxCertSize {
		return nil, fmt.Errorf("%d bytes is too large for a certificate file", len(data))
	}
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		if len(data) > MaxCertSize {
			return nil, fmt.Errorf("%d bytes is too large for one DER certificate", len(data))
		}
		if _, err := ClassifyCert(data); err != nil {
			return nil, fmt.Errorf("not a PEM file and not an AMD DER certificate: %v", strings.TrimPrefix(err.Error(), ErrMalformed.Error()+": "))
		}
		return [][]byte{append([]byte(nil), data...)}, nil
	}
	var out [][]byte
	rest := trimmed
	for len(bytes.TrimSpace(rest)) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("broken PEM after %d certificate(s)", len(out))
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block of type %q, want CERTIFICATE", b.Type)
		}
		if _, err := ClassifyCert(b.Bytes); err != nil {
			return nil, fmt.Errorf("PEM certificate %d: %v", len(out)+1, strings.TrimPrefix(err.Error(), ErrMalformed.Error()+": "))
		}
		out = append(out, b.Bytes)
		if len(out) > 8 {
			return nil, fmt.Errorf("more than 8 certificates in one file")
		}
	}
	return out, nil
}

// AddCerts places AMD certificates (DER) into the evidence's fields by kind.
// A certificate of a kind the evidence already holds must be the same one.
func (ev *Evidence) AddCerts(ders ...[]byte) error {
	for _, der := range ders {
		info, err := ClassifyCert(der)
		if err != nil {
			return err
		}
		var dst *[]byte
		switch info.Kind {
		case "ark":
			dst = &ev.ARK
		case "ask":
			dst = &ev.ASK
		case "asvk":
			dst = &ev.ASVK
		case "vcek":
			dst = &ev.VCEK
		case "vlek":
			dst = &ev.VLEK
		}
		if len(*dst) > 0 && !bytes.Equal(*dst, der) {
			return fmt.Errorf("two different %s certificates", strings.ToUpper(info.Kind))
		}
		*dst = der
	}
	return nil
}

// ReadReportFile reads a raw report as `snpguest report` writes it.
func ReadReportFile(path string) ([]byte, error) {
	b, err := readLimited(path, ReportSize+1)
	if err != nil {
		return nil, err
	}
	switch {
	case len(b) < ReportSize:
		return nil, fmt.Errorf("%s: %d bytes, an SEV-SNP report is %d (truncated?)", path, len(b), ReportSize)
	case len(b) > ReportSize:
		return nil, fmt.Errorf("%s: larger than the %d bytes of an SEV-SNP report", path, ReportSize)
	}
	if _, err := parseReport(b); err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), ErrMalformed.Error()+": "))
	}
	return b, nil
}

// ReadCertFile reads one certificate file (PEM or DER) and returns DER.
func ReadCertFile(path string) ([][]byte, error) {
	b, err := readLimited(path, 4*MaxCertSize+1)
	if err != nil {
		return nil, err
	}
	ders, err := ParseCertData(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return ders, nil
}

// certFileNames are the names snpguest fetch/certificates write.
var certFileNames = map[string]bool{
	"vcek": true, "vlek": true, "ask": true, "ark": true, "asvk": true, "cert_chain": true,
}

// ReadCertDir reads the certificate files of a directory as snpguest writes
// them (vcek.pem/.der, vlek, ask, ark, asvk, cert_chain.pem) and returns
// them as DER. Other files are ignored.
func ReadCertDir(dir string) ([][]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	var out [][]byte
	for _, e := range ents {
		name := strings.ToLower(e.Name())
		ext := filepath.Ext(name)
		if e.IsDir() || (ext != ".pem" && ext != ".der" && ext != ".crt" && ext != ".cer") || !certFileNames[strings.TrimSuffix(name, ext)] {
			continue
		}
		ders, err := ReadCertFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, ders...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate files (vcek.pem, ask.pem, ark.pem, cert_chain.pem, ...)", dir)
	}
	return out, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
