package attest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/sim"
)

// testNow is inside the validity of every simulated certificate.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func newVerifier(t testing.TB, o attest.Options) *attest.Verifier {
	t.Helper()
	o.TrustSimulatedRoot = true
	o.SimulatedRoots = sim.Root().TrustedRoots()
	if o.Now == nil {
		o.Now = func() time.Time { return testNow }
	}
	v, err := attest.NewVerifier(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var (
	chipMu sync.Mutex
	chips  = map[string]*sim.Chip{}
)

// chip returns the simulated chip, shared by the tests of this process so
// that its VCEK certificates are issued once.
func chip(t testing.TB, p attest.Product, seed string) *sim.Chip {
	t.Helper()
	chipMu.Lock()
	defer chipMu.Unlock()
	if c := chips[string(p)+"/"+seed]; c != nil {
		return c
	}
	c, err := sim.NewChip(p, seed)
	if err != nil {
		t.Fatal(err)
	}
	chips[string(p)+"/"+seed] = c
	return c
}

func TestVerifyPositive(t *testing.T) {
	v := newVerifier(t, attest.Options{})
	for _, p := range attest.Products {
		for _, vlek := range []bool{false, true} {
			for _, mode := range []sim.CertMode{sim.CertTable, sim.CertFields} {
				c := chip(t, p, "host-1")
				var rd [64]byte
				rd[0] = 7
				ev, err := c.Evidence(sim.ReportOptions{ReportData: rd, VLEK: vlek, Certs: mode})
				if err != nil {
					t.Fatal(err)
				}
				vd, err := v.Verify(context.Background(), ev, nil, attest.Expectation{ReportData: rd[:]})
				if err != nil {
					t.Fatal(err)
				}
				if !vd.Verified || !vd.Simulated {
					t.Fatalf("%s vlek=%v mode=%d: verified=%v simulated=%v reasons=%v", p, vlek, mode, vd.Verified, vd.Simulated, vd.Reasons)
				}
				if vd.Claims.Product != p {
					t.Errorf("product %q, want %q", vd.Claims.Product, p)
				}
			}
		}
	}
}

// TestConcurrentVerify shares one verifier (and its chain cache) between
// goroutines verifying different chips, products and signers.
func TestConcurrentVerify(t *testing.T) {
	v := newVerifier(t, attest.Options{ChainCacheSize: 2})
	var evs []*attest.Evidence
	for _, p := range attest.Products {
		for _, vlek := range []bool{false, true} {
			ev, err := chip(t, p, "concurrent").Evidence(sim.ReportOptions{ReportData: [64]byte{1}, VLEK: vlek})
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
	}
	rd := make([]byte, 64)
	rd[0] = 1
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				ev := evs[(g+i)%len(evs)]
				vd, err := v.Verify(context.Background(), ev, nil, attest.Expectation{ReportData: rd})
				if err != nil || !vd.Verified {
					errs <- fmt.Sprint(err, vd.Reasons)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
