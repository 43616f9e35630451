package sim_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	spb "github.com/google/go-sev-guest/proto/sevsnp"

	"keyholder/backend/attest"
	"keyholder/backend/sim"
)

// TestRootIsDeterministic pins the simulated root: a console and an agent
// built from different versions must derive the same certificates from Seed.
func TestRootIsDeterministic(t *testing.T) {
	golden, err := os.ReadFile("testdata/root-fingerprints.txt")
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, p := range attest.Products {
		for _, c := range []struct {
			name string
			der  []byte
		}{{"ARK", sim.Root().ARK(p).Raw}, {"ASK", sim.Root().ASK(p).Raw}, {"ASVK", sim.Root().ASVK(p).Raw}} {
			s := sha256.Sum256(c.der)
			got.WriteString(string(p) + " " + c.name + " " + hex.EncodeToString(s[:]) + "\n")
		}
		c, err := sim.NewChip(p, "golden")
		if err != nil {
			t.Fatal(err)
		}
		vcek, err := c.VCEKCert(sim.DefaultTCB(p))
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(vcek)
		got.WriteString(string(p) + " VCEK(golden) " + hex.EncodeToString(s[:]) + "\n")
	}
	if got.String() != string(golden) {
		t.Fatalf("simulated root changed:\n%s\nwant:\n%s", got.String(), golden)
	}
	for _, r := range sim.Root().TrustedRoots() {
		if !r.Simulated {
			t.Fatalf("%s root not marked simulated", r.Product)
		}
	}
}

func TestReportOptionErrors(t *testing.T) {
	c, err := sim.NewChip(attest.Milan, "errors")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    sim.ReportOptions
		want string
	}{
		{"short measurement", sim.ReportOptions{Measurement: []byte{1}}, "measurement is 1 bytes"},
		{"long host data", sim.ReportOptions{HostData: make([]byte, 33)}, "host data is 33 bytes"},
		{"short chip ID", sim.ReportOptions{ChipID: make([]byte, 10)}, "chip ID is 10 bytes"},
		{"short family ID", sim.ReportOptions{FamilyID: make([]byte, 3)}, "family ID is 3 bytes"},
	}
	for _, tc := range cases {
		if _, err := c.Evidence(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := sim.NewChip("Naples", "x"); err == nil {
		t.Error("unknown product accepted")
	}
	if _, err := sim.NewDevice(c, sim.ReportOptions{}).GetRawQuoteAtLevel([64]byte{}, 4); err == nil {
		t.Error("VMPL 4 accepted")
	}
}

func TestChipsDiffer(t *testing.T) {
	a, _ := sim.NewChip(attest.Genoa, "a")
	b, _ := sim.NewChip(attest.Genoa, "b")
	a2, _ := sim.NewChip(attest.Genoa, "a")
	if string(a.ID()) == string(b.ID()) || string(a.ID()) != string(a2.ID()) {
		t.Fatal("chip IDs are not a function of product and seed")
	}
	va, _ := a.VCEKCert(sim.DefaultTCB(attest.Genoa))
	va2, _ := a2.VCEKCert(sim.DefaultTCB(attest.Genoa))
	if string(va) != string(va2) {
		t.Fatal("the same chip got two different VCEK certificates")
	}
}

// The simulated device names its product and stepping as go-sev-guest
// expects them of real hardware.
func TestDeviceProduct(t *testing.T) {
	for _, c := range []struct {
		p        attest.Product
		name     spb.SevProduct_SevProductName
		stepping uint32
	}{
		{attest.Milan, spb.SevProduct_SEV_PRODUCT_MILAN, 1},
		{attest.Genoa, spb.SevProduct_SEV_PRODUCT_GENOA, 1},
		{attest.Turin, spb.SevProduct_SEV_PRODUCT_TURIN, 0},
	} {
		chip, err := sim.NewChip(c.p, "product-"+string(c.p))
		if err != nil {
			t.Fatal(err)
		}
		got := sim.NewDevice(chip, sim.ReportOptions{}).Product()
		if got.GetName() != c.name || got.GetMachineStepping().GetValue() != c.stepping {
			t.Fatalf("%s: product %v stepping %d", c.p, got.GetName(), got.GetMachineStepping().GetValue())
		}
	}
}
