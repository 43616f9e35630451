package attest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/images"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

func createImage(t *testing.T, db *store.DB, name string) string {
	t.Helper()
	var id string
	err := db.Tx(context.Background(), func(tx *sql.Tx) error {
		im, err := images.CreateTx(context.Background(), tx, testNow, name, "", "alice")
		id = im.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestReferenceVersions(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	refs := attest.NewReferences(db)
	img := createImage(t, db, "web-01")

	if _, err := refs.Latest(ctx, img); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Latest of an image without values: %v, want ErrNotFound", err)
	}
	r1 := goodRef(attest.Milan)
	v1, err := refs.Put(ctx, img, r1, "alice", "first boot")
	if err != nil {
		t.Fatal(err)
	}
	// Same values in another order: no new version.
	same := *r1
	same.Measurements = []attest.Hex{sim.DemoMeasurement}
	v1b, err := refs.Put(ctx, img, &same, "bob", "again")
	if err != nil || v1b.Version != 1 || v1b.CreatedBy != "alice" {
		t.Fatalf("unchanged values made version %d by %q (%v)", v1b.Version, v1b.CreatedBy, err)
	}
	r2 := goodRef(attest.Milan)
	r2.Measurements = append(r2.Measurements, measurement("v2"))
	v2, err := refs.Put(ctx, img, r2, "bob", "add v2 launch")
	if err != nil || v2.Version != 2 {
		t.Fatalf("version %d, %v", v2.Version, err)
	}
	list, err := refs.List(ctx, img)
	if err != nil || len(list) != 2 || list[0].Version != 2 || list[1].Version != 1 {
		t.Fatalf("list %+v, %v", list, err)
	}
	if list[0].CreatedBy != "bob" || list[1].CreatedBy != "alice" || list[1].Comment != "first boot" || !list[1].CreatedAt.Equal(testNow) {
		t.Fatalf("authorship lost: %+v", list)
	}
	got, err := refs.Get(ctx, img, 1)
	if err != nil || got.Hash != v1.Hash || len(got.Values.Measurements) != 1 {
		t.Fatalf("version 1: %+v, %v", got, err)
	}
	latest, _ := refs.Latest(ctx, img)
	if latest.Version != 2 || len(latest.Values.Measurements) != 2 {
		t.Fatalf("latest %+v", latest)
	}

	bad := []struct {
		name  string
		img   string
		rv    *attest.ReferenceValues
		by    string
		isErr error
	}{
		{"no measurement", img, &attest.ReferenceValues{}, "alice", attest.ErrInvalidReference},
		{"short measurement", img, &attest.ReferenceValues{Measurements: []attest.Hex{{1, 2}}}, "alice", attest.ErrInvalidReference},
		{"VMPL out of range", img, &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}, AllowedVMPLs: []uint32{4}}, "alice", attest.ErrInvalidReference},
		{"anonymous change", img, goodRef(attest.Milan), "", attest.ErrInvalidReference},
		{"unknown image", "img_nope", goodRef(attest.Milan), "alice", store.ErrNotFound},
	}
	for _, tc := range bad {
		if _, err := refs.Put(ctx, tc.img, tc.rv, tc.by, ""); !errors.Is(err, tc.isErr) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.isErr)
		}
	}
	if list, _ := refs.List(ctx, img); len(list) != 2 {
		t.Fatalf("refused changes added versions: %d", len(list))
	}
}

// LatestAt reuses what it read at a configuration version, and every
// change to reference values (through Put or any other writer) moves the
// version, so the next caller reads afresh.
func TestLatestAtConfigVersion(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	refs := attest.NewReferences(db)
	img := createImage(t, db, "web-01")
	version := func() int64 {
		t.Helper()
		var n int64
		if err := db.QueryRow(`SELECT ` + store.ConfigVersionSQL).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	n0 := version()
	if _, err := refs.LatestAt(ctx, img, n0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestAt of an image without values: %v, want ErrNotFound", err)
	}
	if _, err := refs.Put(ctx, img, goodRef(attest.Milan), "alice", "v1"); err != nil {
		t.Fatal(err)
	}
	n1 := version()
	if n1 == n0 {
		t.Fatal("adding reference values did not move the configuration version")
	}
	v1, err := refs.LatestAt(ctx, img, n1)
	if err != nil || v1.Version != 1 || v1.CreatedBy != "alice" || v1.Comment != "v1" || !v1.CreatedAt.Equal(testNow) {
		t.Fatalf("LatestAt after Put: %+v, %v", v1, err)
	}

	// Another writer adds version 2 behind the store's back.
	r2 := goodRef(attest.Milan)
	r2.Measurements = append(r2.Measurements, measurement("v2"))
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := attest.PutReferenceTx(ctx, tx, testNow, img, r2, "bob", "v2")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n2 := version()
	if n2 == n1 {
		t.Fatal("a second version did not move the configuration version")
	}
	// A caller still holding n1 gets what was read at n1 (its snapshot);
	// one that read n2 gets version 2.
	if got, _ := refs.LatestAt(ctx, img, n1); got.Version != 1 {
		t.Fatalf("LatestAt(n1) = version %d, want the cached 1", got.Version)
	}
	if got, err := refs.LatestAt(ctx, img, n2); err != nil || got.Version != 2 || len(got.Values.Measurements) != 2 {
		t.Fatalf("LatestAt(n2) = %+v, %v", got, err)
	}
	// Deleting (restoring an older database, say) moves it too.
	if _, err := db.Exec(`DELETE FROM reference_values WHERE image_id = ? AND version = 2`, img); err != nil {
		t.Fatal(err)
	}
	n3 := version()
	if got, err := refs.LatestAt(ctx, img, n3); n3 == n2 || err != nil || got.Version != 1 {
		t.Fatalf("after deleting version 2 (version %d→%d): %+v, %v", n2, n3, got, err)
	}
	// n == 0 always reads.
	if got, err := refs.LatestAt(ctx, img, 0); err != nil || got.Version != 1 {
		t.Fatalf("LatestAt(0) = %+v, %v", got, err)
	}
}

func TestCertCacheVerify(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	cache := attest.NewCertCache(db)
	v := newVerifier(t, attest.Options{Certs: cache})
	c := chip(t, attest.Turin, "cached")
	ev, err := c.Evidence(sim.ReportOptions{ReportData: rd, Certs: sim.NoCerts})
	if err != nil {
		t.Fatal(err)
	}
	vd, _ := v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:]})
	if !vd.Has(attest.CodeMissingCert) {
		t.Fatalf("empty cache: %v", vd.Reasons)
	}
	vcek, _ := c.VCEKCert(sim.DefaultTCB(attest.Turin))
	info, err := cache.PutCert(ctx, vcek, "vcek.der")
	if err != nil || info.Kind != "vcek" || info.Product != attest.Turin || info.ChipID != hex.EncodeToString(c.ID()) {
		t.Fatalf("%+v %v", info, err)
	}
	// Another TCB's VCEK of the same chip is not picked.
	older := sim.DefaultTCB(attest.Turin)
	older.SNP--
	old, _ := c.VCEKCert(older)
	if _, err := cache.PutCert(ctx, old, "old.der"); err != nil {
		t.Fatal(err)
	}
	vd, _ = v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:]})
	if !vd.Verified {
		t.Fatalf("VCEK from the cache: %v", vd.Reasons)
	}
	for _, w := range vd.Warnings {
		if w.Code == attest.CodeRevocationNotChecked {
			goto crl
		}
	}
	t.Fatalf("no CRL, yet no revocation warning: %v", vd.Warnings)
crl:
	// The stale-CRL policy "refuse" turns the warning into a refusal.
	vd, _ = v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:], StaleCRL: attest.CRLRefuse})
	if vd.Verified || !vd.Has(attest.CodeRevocationNotChecked) {
		t.Fatalf("no CRL under the refuse policy: verified %v %v", vd.Verified, vd.Reasons)
	}
	// A fresh CRL: checked. An old one: the warning again.
	fresh, _ := sim.Root().CRL(attest.Turin, testNow.Add(-time.Hour))
	if _, err := v.ImportCRL(ctx, cache, fresh, "crl.der"); err != nil {
		t.Fatal(err)
	}
	vd, _ = v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:]})
	if !vd.Verified || !vd.RevocationChecked {
		t.Fatalf("fresh CRL: checked=%v %v", vd.RevocationChecked, vd.Reasons)
	}
	vd, _ = v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:], At: testNow.Add(40 * 24 * time.Hour)})
	if vd.RevocationChecked {
		t.Fatal("a 40-day-old CRL counted as checked")
	}
	if !vd.Verified {
		t.Fatalf("a stale CRL refused under the warn policy: %v", vd.Reasons)
	}
	vd, _ = v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:], At: testNow.Add(40 * 24 * time.Hour), StaleCRL: attest.CRLRefuse})
	if vd.Verified || !vd.Has(attest.CodeRevocationNotChecked) {
		t.Fatalf("a stale CRL under the refuse policy: verified %v %v", vd.Verified, vd.Reasons)
	}
	vd, _ = v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:], StaleCRL: attest.CRLRefuse})
	if !vd.Verified || !vd.RevocationChecked {
		t.Fatalf("a fresh CRL under the refuse policy: %v", vd.Reasons)
	}
	// VLEK from the cache.
	evl, _ := c.Evidence(sim.ReportOptions{ReportData: rd, VLEK: true, Certs: sim.NoCerts})
	vlek, _ := sim.Root().VLEKCert(attest.Turin, sim.DefaultTCB(attest.Turin))
	if _, err := cache.PutCert(ctx, vlek, "vlek.der"); err != nil {
		t.Fatal(err)
	}
	vd, _ = v.Verify(ctx, evl, nil, attest.Expectation{ReportData: rd[:]})
	if !vd.Verified || vd.Claims.Signer != attest.VLEK {
		t.Fatalf("VLEK from the cache: %v", vd.Reasons)
	}
	list, err := cache.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list %d %v", len(list), err)
	}
	// Garbage and foreign CRLs are refused and not stored.
	if _, err := v.ImportCRL(ctx, cache, []byte("junk"), "x"); !errors.Is(err, attest.ErrMalformed) {
		t.Fatalf("junk CRL: %v", err)
	}
	prod, _ := attest.NewVerifier(ctx, attest.Options{Certs: cache, Now: func() time.Time { return testNow }})
	if _, err := prod.ImportCRL(ctx, cache, fresh, "x"); !errors.Is(err, attest.ErrUntrustedCRL) {
		t.Fatalf("simulated CRL under production roots: %v", err)
	}
	if _, err := cache.PutCert(ctx, []byte("junk"), "x"); !errors.Is(err, attest.ErrMalformed) {
		t.Fatalf("junk certificate: %v", err)
	}
}

func TestWarmCacheAndSimulatedLabel(t *testing.T) {
	ctx := context.Background()
	v := newVerifier(t, attest.Options{})
	ev, _ := chip(t, attest.Genoa, "warm").Evidence(sim.ReportOptions{ReportData: rd})
	first, _ := v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:]})
	second, _ := v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:]})
	if !first.Verified || first.ChainCached || !second.Verified || !second.ChainCached {
		t.Fatalf("first cached=%v, second cached=%v", first.ChainCached, second.ChainCached)
	}
	if !second.Simulated || second.Warnings[0].Code != attest.CodeSimulated {
		t.Fatalf("not labelled simulated: %+v", second.Warnings)
	}
	// Without the development option the simulated root is not trusted,
	// even when the roots are passed.
	prod, err := attest.NewVerifier(ctx, attest.Options{SimulatedRoots: sim.Root().TrustedRoots(), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	vd, _ := prod.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:]})
	if vd.Verified || vd.Simulated {
		t.Fatalf("simulated evidence verified in production: %v", vd.Reasons)
	}
	// A simulated root smuggled in as a production root is refused.
	if _, err := attest.NewVerifier(ctx, attest.Options{Roots: sim.Root().TrustedRoots()}); err == nil {
		t.Fatal("simulated roots accepted as production roots")
	}
	// Masked chip IDs verify (the VCEK's HWID cannot be compared).
	masked, _ := chip(t, attest.Milan, "masked").Evidence(sim.ReportOptions{ReportData: rd, MaskChipID: true})
	vd, _ = v.Verify(ctx, masked, nil, attest.Expectation{ReportData: rd[:]})
	if !vd.Verified || !vd.Claims.ChipIDMasked {
		t.Fatalf("masked chip: %v", vd.Reasons)
	}
	// The chip's identity is the VCEK's hardware ID, masked or not; a
	// second verification from the warm chain cache says the same.
	mc := chip(t, attest.Milan, "masked")
	for i := 0; i < 2; i++ {
		vd, _ = v.Verify(ctx, masked, nil, attest.Expectation{ReportData: rd[:]})
		if !bytes.Equal(vd.HardwareID, mc.ID()) {
			t.Fatalf("verification %d: hardware ID %x, want the VCEK's %x", i, vd.HardwareID, mc.ID())
		}
	}
	// Allowed chips are matched on the hardware ID, masked or not.
	vd, _ = v.Verify(ctx, masked, &attest.ReferenceValues{Measurements: []attest.Hex{sim.DemoMeasurement}, AllowedChipIDs: []attest.Hex{mc.ID()}},
		attest.Expectation{ReportData: rd[:]})
	if !vd.Verified {
		t.Fatalf("a masked report of an allowed chip: %v", vd.Reasons)
	}
	// A VLEK names no chip.
	vlek, _ := mc.Evidence(sim.ReportOptions{ReportData: rd, VLEK: true, MaskChipID: true})
	vd, _ = v.Verify(ctx, vlek, nil, attest.Expectation{ReportData: rd[:]})
	if !vd.Verified || vd.Claims.Signer != attest.VLEK || vd.HardwareID != nil {
		t.Fatalf("VLEK: verified %v signer %s hardware ID %x (%v)", vd.Verified, vd.Claims.Signer, vd.HardwareID, vd.Reasons)
	}
}

func TestProductionRoots(t *testing.T) {
	roots, err := attest.ProductionRoots()
	if err != nil || len(roots) != 3 {
		t.Fatalf("%d roots, %v", len(roots), err)
	}
	for _, r := range roots {
		// go-sev-guest v0.15.0 embeds no Turin ASVK.
		if r.ARK.Subject.CommonName != "ARK-"+string(r.Product) || r.ASK == nil || (r.ASVK == nil && r.Product != attest.Turin) || r.Simulated {
			t.Errorf("%s root: %s %v %v", r.Product, r.ARK.Subject.CommonName, r.ASK != nil, r.ASVK != nil)
		}
	}
}

// evidenceHashVector replays the canonical encoding of Evidence.Hash from
// its spec comment.
func evidenceHashVector(fields [][]byte) string {
	h := sha256.New()
	h.Write([]byte("keyholder evidence v1\x00"))
	for i, f := range fields {
		var hdr [5]byte
		hdr[0] = byte(i + 1)
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(f)))
		h.Write(hdr[:])
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestEvidenceHashVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/evidence-hash-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Evidence json.RawMessage `json:"evidence"`
		Hash     string          `json:"hash"`
	}
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	for i, v := range vectors {
		var ev attest.Evidence
		if err := json.Unmarshal(v.Evidence, &ev); err != nil {
			t.Fatal(err)
		}
		got := ev.HashHex()
		spec := evidenceHashVector([][]byte{ev.Report, ev.CertTable, ev.VCEK, ev.VLEK, ev.ASK, ev.ASVK, ev.ARK, ev.TPM})
		if got != v.Hash || spec != v.Hash {
			t.Errorf("vector %d: Hash %s, spec %s, want %s", i, got, spec, v.Hash)
		}
	}
	// Moving bytes between fields changes the hash.
	a := attest.Evidence{Report: []byte("ab"), VCEK: []byte("c")}
	c := attest.Evidence{Report: []byte("a"), VCEK: []byte("bc")}
	if a.Hash() == c.Hash() {
		t.Fatal("field boundaries are not hashed")
	}
	if !bytes.Equal([]byte(a.HashHex()), []byte(a.HashHex())) {
		t.Fatal("unstable")
	}
}

func TestGCECertificatesParse(t *testing.T) {
	for _, f := range []string{"gcecerts/gcp_ek_ak_ca_root.crt", "gcecerts/gcp_ek_ak_ca_intermediate_v3.crt", "gcecerts/tpm_ek_intermediate_3.crt"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(b)
		if err != nil || !c.IsCA {
			t.Fatalf("%s: CA=%v %v", f, c != nil && c.IsCA, err)
		}
	}
}

func TestVerdictSummary(t *testing.T) {
	v := newVerifier(t, attest.Options{})
	ev, _ := chip(t, attest.Milan, "summary").Evidence(sim.ReportOptions{ReportData: rd, Policy: attest.PolicyBits(true, false, false, false)})
	vd, _ := v.Verify(context.Background(), ev, goodRef(attest.Milan), attest.Expectation{ReportData: rd[:]})
	got := vd.Summary()
	for _, want := range []string{"refused (debug_enabled)", "SIMULATED", "Milan VCEK", "measurement " + hex.EncodeToString(sim.DemoMeasurement)[:16], "evidence " + vd.EvidenceHash[:16]} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
}

func TestReferenceFromClaims(t *testing.T) {
	v := newVerifier(t, attest.Options{})
	ctx := context.Background()
	for _, p := range attest.Products {
		o := sim.ReportOptions{ReportData: rd, HostData: bytes.Repeat([]byte{7}, 32), IDKeyDigest: measurement("id"), AuthorKeyDigest: measurement("author"),
			VMPL: 1, GuestSVN: 2, Policy: attest.PolicyBits(false, false, true, false)}
		ev, err := chip(t, p, "proposal").Evidence(o)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := v.Verify(ctx, ev, nil, attest.Expectation{ReportData: rd[:]})
		ref := attest.ReferenceFromClaims(first.Claims)
		if err := ref.Validate(); err != nil {
			t.Fatal(err)
		}
		if vd, _ := v.Verify(ctx, ev, &ref, attest.Expectation{ReportData: rd[:]}); !vd.Verified {
			t.Fatalf("%s: the proposal refuses its own guest: %v", p, vd.Reasons)
		}
		// Another measurement, a lower TCB or a debug launch is refused.
		other, _ := chip(t, p, "proposal").Evidence(func() sim.ReportOptions { o := o; o.Measurement = measurement("other"); return o }())
		if vd, _ := v.Verify(ctx, other, &ref, attest.Expectation{ReportData: rd[:]}); !vd.Has(attest.CodeMeasurement) {
			t.Fatalf("%s: other measurement: %v", p, vd.Reasons)
		}
		debug, _ := chip(t, p, "proposal").Evidence(func() sim.ReportOptions { o := o; o.Policy = attest.PolicyBits(true, false, true, false); return o }())
		if vd, _ := v.Verify(ctx, debug, &ref, attest.Expectation{ReportData: rd[:]}); !vd.Has(attest.CodeDebug) {
			t.Fatalf("%s: debug: %v", p, vd.Reasons)
		}
	}
}
