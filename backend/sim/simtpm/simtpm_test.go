package simtpm_test

import (
	"testing"

	"keyholder/backend/attest"
	"keyholder/backend/sim/simtpm"
)

func TestAttestation(t *testing.T) {
	if _, err := simtpm.Attestation(simtpm.Options{}, nil); err == nil {
		t.Fatal("empty nonce accepted")
	}
	a, err := simtpm.Attestation(simtpm.Options{Seed: 5}, []byte("n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := simtpm.Attestation(simtpm.Options{Seed: 5, SecureBoot: true}, []byte("n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := simtpm.Attestation(simtpm.Options{Seed: 6}, []byte("n"))
	if err != nil {
		t.Fatal(err)
	}
	ka, kb, kc := (&attest.Evidence{TPM: a}).AKDigest(), (&attest.Evidence{TPM: b}).AKDigest(), (&attest.Evidence{TPM: c}).AKDigest()
	if ka == nil || string(ka) != string(kb) || string(ka) == string(kc) {
		t.Fatal("the attestation key is not a function of the seed")
	}
	if err := attest.CheckTPM(a); err != nil {
		t.Fatal(err)
	}
}
