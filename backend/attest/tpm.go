package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	pb "github.com/google/go-tpm-tools/proto/attest"
	"github.com/google/go-tpm-tools/server"
	"github.com/google/go-tpm/legacy/tpm2"

	"keyholder/backend/internal/tpmwire"
)

// TPMState is the machine state a verified vTPM attestation shows.
type TPMState struct {
	// Verified is true when the quote, AK trust and event log all checked out.
	Verified   bool   `json:"verified"`
	SecureBoot bool   `json:"secure_boot"`
	Hash       string `json:"hash"` // PCR bank used: SHA256, SHA384, ...
	// PCRs are the quoted PCR values of that bank.
	PCRs          map[uint32]Hex `json:"pcrs"`
	KernelCmdline string         `json:"kernel_cmdline,omitempty"`
	// PK, KEK, DB and DBX are SHA-256 digests over each Secure Boot
	// database (certificates' DER and hashes, in event order).
	PK  Hex `json:"pk_digest,omitempty"`
	KEK Hex `json:"kek_digest,omitempty"`
	DB  Hex `json:"db_digest,omitempty"`
	DBX Hex `json:"dbx_digest,omitempty"`
	// AKDigest is SHA-256 of the attestation key's public area.
	AKDigest Hex `json:"ak_digest"`
	// AKTrust says why the AK was trusted: "snp_report" or "gce_certificate".
	AKTrust string `json:"ak_trust,omitempty"`
	// GCEInstance is "project/zone/instance" from a Google AK certificate.
	GCEInstance string `json:"gce_instance,omitempty"`
}

func parseTPMAttestation(b []byte) (*pb.Attestation, error) {
	if len(b) > MaxTPMSize {
		return nil, fmt.Errorf("%w: vTPM attestation is %d bytes, the limit is %d", ErrMalformed, len(b), MaxTPMSize)
	}
	att, err := tpmwire.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%w: vTPM attestation: %v", ErrMalformed, err)
	}
	if len(att.GetAkPub()) == 0 || len(att.GetQuotes()) == 0 {
		return nil, fmt.Errorf("%w: vTPM attestation has no attestation key or no quote", ErrMalformed)
	}
	return att, nil
}

// CheckTPM checks that raw is a go-tpm-tools attestation with an
// attestation key and at least one quote, without verifying anything.
func CheckTPM(raw []byte) error {
	_, err := parseTPMAttestation(raw)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), ErrMalformed.Error()+": "))
	}
	return nil
}

// VerifyTPM checks a go-tpm-tools attestation on its own (the CLI's
// verify-tpm): the quote over nonce, the event log replay, and the AK, which
// is trusted through Google's EK/AK roots when gce is set, or when its digest
// equals boundAKDigest (which the caller took from a verified SNP report).
func (v *Verifier) VerifyTPM(attestation, nonce, boundAKDigest []byte, gce bool, ref *TPMReference) (*TPMState, []Reason) {
	return v.verifyTPM(attestation, nonce, boundAKDigest, gce, ref)
}

func (v *Verifier) verifyTPM(raw, nonce, boundAKDigest []byte, gce bool, ref *TPMReference) (*TPMState, []Reason) {
	var reasons []Reason
	refuse := func(c Code, f string, a ...any) { reasons = append(reasons, reasonf(c, f, a...)) }
	att, err := parseTPMAttestation(raw)
	if err != nil {
		refuse(CodeTPMMalformed, "%s", strings.TrimPrefix(err.Error(), ErrMalformed.Error()+": "))
		return nil, reasons
	}
	akd := sha256.Sum256(att.GetAkPub())
	st := &TPMState{AKDigest: akd[:], PCRs: map[uint32]Hex{}}

	// The nonce first, for its own reason code.
	if len(nonce) == 0 {
		refuse(CodeTPMNonce, "no nonce to check the vTPM quote against")
		return st, reasons
	}
	nonceOK := false
	for _, q := range att.GetQuotes() {
		ad, err := tpm2.DecodeAttestationData(q.GetQuote())
		if err != nil {
			refuse(CodeTPMMalformed, "vTPM quote does not decode: %v", err)
			return st, reasons
		}
		if subtle.ConstantTimeCompare(ad.ExtraData, nonce) == 1 {
			nonceOK = true
		}
	}
	if !nonceOK {
		refuse(CodeTPMNonce, "the vTPM quote is not over the expected nonce")
		return st, reasons
	}

	opts := server.VerifyOpts{Nonce: nonce, Loader: server.GRUB}
	switch {
	case len(boundAKDigest) > 0 && subtle.ConstantTimeCompare(boundAKDigest, akd[:]) == 1:
		pub, err := tpm2.DecodePublic(att.GetAkPub())
		if err != nil {
			refuse(CodeTPMMalformed, "attestation key public area: %v", err)
			return st, reasons
		}
		key, err := pub.Key()
		if err != nil {
			refuse(CodeTPMMalformed, "attestation key: %v", err)
			return st, reasons
		}
		opts.TrustedAKs = append(opts.TrustedAKs, key)
		st.AKTrust = "snp_report"
	case gce && len(att.GetAkCert()) > 0:
		roots, ints := gceCAs()
		opts.TrustedRootCerts = roots
		opts.IntermediateCerts = append([]*x509.Certificate(nil), ints...)
		st.AKTrust = "gce_certificate"
	case gce:
		refuse(CodeTPMAKUntrusted, "the vTPM attestation has no AK certificate to check against Google's roots")
		return st, reasons
	default:
		refuse(CodeTPMAKNotBound, "the vTPM attestation key %s… is not bound into the SNP report", shortHex(akd[:]))
		return st, reasons
	}

	ms, err := server.VerifyAttestation(att, opts)
	if err != nil {
		// Not every guest boots through GRUB; retry without bootloader parsing.
		opts.Loader = server.UnsupportedLoader
		ms, err = server.VerifyAttestation(att, opts)
	}
	if err != nil {
		if st.AKTrust == "gce_certificate" && strings.Contains(err.Error(), "AK") {
			refuse(CodeTPMAKUntrusted, "the AK certificate does not chain to Google's roots: %v", err)
		} else {
			refuse(CodeTPMQuote, "the vTPM attestation does not verify: %v", err)
		}
		return st, reasons
	}
	fillTPMState(st, att, ms)
	if ref != nil {
		if ref.RequireSecureBoot && !st.SecureBoot {
			refuse(CodeSecureBootOff, "Secure Boot is off and the reference values require it")
		}
		idx := make([]uint32, 0, len(ref.PCRs))
		for i := range ref.PCRs {
			idx = append(idx, i)
		}
		sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
		for _, i := range idx {
			want := ref.PCRs[i]
			got, ok := st.PCRs[i]
			if !ok || !bytes.Equal(got, want) {
				refuse(CodePCRMismatch, "PCR %d is %s…, the reference value is %s…", i, shortHex(got), shortHex(want))
			}
		}
	}
	st.Verified = len(reasons) == 0
	return st, reasons
}

func fillTPMState(st *TPMState, att *pb.Attestation, ms *pb.MachineState) {
	alg := tpm2.Algorithm(ms.GetHash())
	st.Hash = strings.TrimPrefix(ms.GetHash().String(), "HASH_")
	if st.Hash == "" || st.Hash == "INVALID" {
		st.Hash = alg.String()
	}
	for _, q := range att.GetQuotes() {
		if tpm2.Algorithm(q.GetPcrs().GetHash()) == alg {
			for i, d := range q.GetPcrs().GetPcrs() {
				st.PCRs[i] = d
			}
		}
	}
	sb := ms.GetSecureBoot()
	st.SecureBoot = sb.GetEnabled()
	st.PK = dbDigest(sb.GetPk())
	st.KEK = dbDigest(sb.GetKek())
	st.DB = dbDigest(sb.GetDb())
	st.DBX = dbDigest(sb.GetDbx())
	st.KernelCmdline = strings.TrimRight(ms.GetLinuxKernel().GetCommandLine(), "\x00")
	if ii := ms.GetPlatform().GetInstanceInfo(); ii != nil {
		st.GCEInstance = fmt.Sprintf("%s/%s/%s", ii.GetProjectId(), ii.GetZone(), ii.GetInstanceName())
	}
}

// dbDigest hashes a Secure Boot database: each certificate (DER, or its
// well-known enum as 4 bytes) and hash, length-prefixed, in order.
func dbDigest(db *pb.Database) Hex {
	if db == nil || (len(db.GetCerts()) == 0 && len(db.GetHashes()) == 0) {
		return nil
	}
	h := sha256.New()
	put := func(tag byte, b []byte) {
		var hdr [5]byte
		hdr[0] = tag
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(b)))
		h.Write(hdr[:])
		h.Write(b)
	}
	for _, c := range db.GetCerts() {
		if der := c.GetDer(); der != nil {
			put(1, der)
		} else {
			var wk [4]byte
			binary.BigEndian.PutUint32(wk[:], uint32(c.GetWellKnown()))
			put(2, wk[:])
		}
	}
	for _, d := range db.GetHashes() {
		put(3, d)
	}
	return h.Sum(nil)
}
