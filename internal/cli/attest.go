package cli

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/images"
	"keyholder/backend/sim"
	"keyholder/backend/store"
)

var attestCommand = &command{
	name:  "attest",
	short: "verify SEV-SNP and vTPM evidence by hand; fill the AMD certificate cache",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `verify checks a raw SEV-SNP report (1184 bytes, as 'snpguest report' writes
it), or evidence in the JSON form agents send (--evidence), against AMD's
certificate chain, offline: certificates come from the evidence, --certs
(vcek.pem/der, ask, ark, cert_chain.pem, as 'snpguest fetch' writes them),
--vcek, or the console's certificate cache. With --reference (a JSON file of
reference values) or --image (the image's newest reference values in the
console's database) it also applies them; without, it checks authenticity
only and prints the claims. The exit status is 0 only for a verified report.

verify-tpm checks a go-tpm-tools attestation (as 'gotpm attest' writes it):
the quote over --nonce, the event log, and the attestation key, trusted
through Google's roots with --gce or by its SHA-256 digest with --ak-digest.

fetch-certs fills the console's certificate cache on a machine that has
network (AMD's key server, or --kds for a mirror), or from a directory of
files (--from): certificates and CRLs (*.crl, crl.der, crl.pem). It is never
used while a guest waits for a key.

A reference values file looks like this (hex in lower case; omitted fields
are not checked, except that debug is never allowed and migration agent and
SMT are refused unless allowed, and only VMPL 0 is accepted by default):

  {"measurements": ["<96 hex digits>", ...],
   "minimum_tcb": {"bootloader": 4, "tee": 0, "snp": 22, "microcode": 213},
   "product": "Genoa", "allow_smt": false, "allow_migration_agent": false,
   "allowed_vmpls": [0], "host_data": "<64 hex digits>",
   "id_key_digests": ["<96 hex digits>"], "allowed_chip_ids": ["<128 hex digits>"],
   "tpm": {"required": true, "require_secure_boot": true, "pcrs": {"7": "<hex>"}}}

Run 'keyholder attest SUBCOMMAND -h' for the flags of one subcommand.
`)
	},
	subcommands: func(_ *flag.FlagSet, env *cliEnv) []*subcommand {
		return []*subcommand{
			{name: "verify", synopsis: `keyholder attest verify (--report FILE | --evidence FILE) [--certs DIR] [--vcek FILE]
                        [--product Milan|Genoa|Turin] [--at RFC3339] [--reference FILE | --image NAME]
                        [--report-data HEX] [--tpm-nonce HEX] [--ak-digest HEX] [--json]`,
				flags: func(fs *flag.FlagSet) func([]string) error { return attestVerify(env, fs) }},
			{name: "verify-tpm", synopsis: "keyholder attest verify-tpm --attestation FILE --nonce HEX [--gce | --ak-digest HEX] [--json]",
				flags: func(fs *flag.FlagSet) func([]string) error { return attestVerifyTPM(env, fs) }},
			{name: "fetch-certs", synopsis: `keyholder attest fetch-certs (--report FILE | --product P [--chip-id HEX --tcb HEX]) [--vlek] [--kds URL]
keyholder attest fetch-certs --from DIR`,
				flags: func(fs *flag.FlagSet) func([]string) error { return attestFetchCerts(env, fs) }},
		}
	},
}

// attestVerifier builds the verifier of a command-line check: AMD's roots,
// the simulated root only with the development flag, and the console's
// certificate cache when the data directory has a database.
func attestVerifier(ctx context.Context, env *cliEnv, devSim bool, crlMaxAge time.Duration) (*attest.Verifier, *store.DB, error) {
	o := attest.Options{CRLMaxAge: crlMaxAge}
	if devSim {
		o.TrustSimulatedRoot = true
		o.SimulatedRoots = sim.Root().TrustedRoots()
	}
	var db *store.DB
	if _, err := os.Stat(filepath.Join(env.dataDir, "keyholder.db")); err == nil || env.database != "" {
		db, err = openStore(ctx, env, false)
		if err != nil {
			return nil, nil, err
		}
		o.Certs = attest.NewCertCache(db)
	}
	v, err := attest.NewVerifier(ctx, o)
	if err != nil {
		if db != nil {
			db.Close()
		}
		return nil, nil, err
	}
	return v, db, nil
}

func decodeHexFlag(name, s string, n int) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "0x")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, &exitError{code: 2, msg: fmt.Sprintf("--%s: not hex: %v", name, err)}
	}
	if n > 0 && len(b) != n {
		return nil, &exitError{code: 2, msg: fmt.Sprintf("--%s: %d bytes, want %d", name, len(b), n)}
	}
	return b, nil
}

// attestJSON is the one object `verify --json` prints.
type attestJSON struct {
	Verified          bool            `json:"verified"`
	Authentic         bool            `json:"authentic"`
	Simulated         bool            `json:"simulated"`
	Reasons           []attest.Reason `json:"reasons"`
	Warnings          []attest.Reason `json:"warnings"`
	EvidenceHash      string          `json:"evidence_hash"`
	RevocationChecked bool            `json:"revocation_checked"`
	ReferenceVersion  int             `json:"reference_version,omitempty"`
	*attest.Claims
}

func attestVerify(env *cliEnv, fs *flag.FlagSet) func([]string) error {
	report := fs.String("report", "", "raw SEV-SNP report `FILE` (1184 bytes)")
	evidenceFile := fs.String("evidence", "", "evidence `FILE` in the JSON form agents send (report, certificates, vTPM)")
	nonceHex := fs.String("tpm-nonce", "", "with --evidence: the nonce its vTPM quote must be over (hex; default: the REPORT_DATA)")
	akHex := fs.String("ak-digest", "", "with --evidence: the vTPM attestation key digest the transcript bound (hex)")
	certs := fs.String("certs", "", "`DIR` with vcek/ask/ark/cert_chain files (PEM or DER)")
	vcek := fs.String("vcek", "", "VCEK or VLEK certificate `FILE` (PEM or DER)")
	product := fs.String("product", "", "expected product: Milan, Genoa or Turin")
	at := fs.String("at", "", "verify as of this time (RFC 3339), for archived evidence")
	refFile := fs.String("reference", "", "reference values `FILE` (JSON)")
	image := fs.String("image", "", "apply the newest reference values of image `NAME` from the console's database")
	reportData := fs.String("report-data", "", "expected REPORT_DATA (128 hex digits)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	crlAge := fs.Duration("crl-max-age", 30*24*time.Hour, "a cached CRL older than this does not count as a revocation check")
	staleCRL := fs.String("stale-crl", "warn", "without a CRL younger than --crl-max-age: warn, or refuse the evidence")
	devSim := fs.Bool("dev-trust-simulated-amd-root", false, "DEVELOPMENT ONLY: accept evidence signed by the simulated AMD root")
	return func([]string) error {
		if *crlAge <= 0 {
			return &exitError{code: 2, msg: "--crl-max-age must be positive"}
		}
		if (*report == "") == (*evidenceFile == "") {
			return &exitError{code: 2, msg: "give one of --report FILE and --evidence FILE"}
		}
		if *refFile != "" && *image != "" {
			return &exitError{code: 2, msg: "--reference and --image exclude each other"}
		}
		crlPolicy, err := attest.ParseCRLPolicy(*staleCRL)
		if err != nil {
			return &exitError{code: 2, msg: "--stale-crl: " + err.Error()}
		}
		exp := attest.Expectation{SkipReportData: *reportData == "", StaleCRL: crlPolicy}
		if *product != "" {
			p, err := attest.ParseProduct(*product)
			if err != nil {
				return &exitError{code: 2, msg: "--product: " + err.Error()}
			}
			exp.Product = p
		}
		if *at != "" {
			t, err := time.Parse(time.RFC3339, *at)
			if err != nil {
				return &exitError{code: 2, msg: fmt.Sprintf("--at %q: want RFC 3339, e.g. 2025-06-01T12:00:00Z", *at)}
			}
			exp.At = t
		}
		if *reportData != "" {
			b, err := decodeHexFlag("report-data", *reportData, attest.ReportDataSize)
			if err != nil {
				return err
			}
			exp.ReportData = b
		}
		if *nonceHex != "" {
			b, err := decodeHexFlag("tpm-nonce", *nonceHex, 0)
			if err != nil {
				return err
			}
			exp.TPMNonce = b
		}
		if *akHex != "" {
			b, err := decodeHexFlag("ak-digest", *akHex, 32)
			if err != nil {
				return err
			}
			exp.AKDigest = b
		}
		var ev *attest.Evidence
		if *evidenceFile != "" {
			b, err := readLimitedFile(*evidenceFile, attest.MaxEvidenceJSON)
			if err != nil {
				return err
			}
			if ev, err = attest.ParseEvidence(b); err != nil {
				return fmt.Errorf("%s: %v", *evidenceFile, strings.TrimPrefix(err.Error(), attest.ErrMalformed.Error()+": "))
			}
		} else {
			raw, err := attest.ReadReportFile(*report)
			if err != nil {
				return err
			}
			ev = &attest.Evidence{Report: raw}
		}
		if *certs != "" {
			ders, err := attest.ReadCertDir(*certs)
			if err != nil {
				return err
			}
			if err := ev.AddCerts(ders...); err != nil {
				return fmt.Errorf("%s: %w", *certs, err)
			}
		}
		if *vcek != "" {
			ders, err := attest.ReadCertFile(*vcek)
			if err != nil {
				return err
			}
			if err := ev.AddCerts(ders...); err != nil {
				return fmt.Errorf("%s: %w", *vcek, err)
			}
		}
		var ref *attest.ReferenceValues
		if *refFile != "" {
			b, err := os.ReadFile(*refFile)
			if err != nil {
				return err
			}
			if ref, err = attest.ParseReferenceValues(b); err != nil {
				return fmt.Errorf("%s: %w", *refFile, err)
			}
		}

		ctx, cancel := signalContext()
		defer cancel()
		v, db, err := attestVerifier(ctx, env, *devSim, *crlAge)
		if err != nil {
			return err
		}
		if db != nil {
			defer db.Close()
		}
		refVersion := 0
		if *image != "" {
			if db == nil {
				return fmt.Errorf("--image: no console database in %s", env.dataDir)
			}
			id, err := images.IDByName(ctx, db, *image)
			if err != nil {
				return fmt.Errorf("--image %q: no such image", *image)
			}
			rv, err := attest.NewReferences(db).Latest(ctx, id)
			if err != nil {
				return fmt.Errorf("--image %q: %w", *image, err)
			}
			ref, refVersion = &rv.Values, rv.Version
			exp.Image, exp.ReferenceVersion = *image, rv.Version
		}
		vd, err := v.Verify(ctx, ev, ref, exp)
		if err != nil {
			return err
		}
		if *asJSON {
			out := attestJSON{Verified: vd.Verified, Authentic: vd.Authentic, Simulated: vd.Simulated, Reasons: vd.Reasons, Warnings: vd.Warnings,
				EvidenceHash: vd.EvidenceHash, RevocationChecked: vd.RevocationChecked, ReferenceVersion: refVersion, Claims: vd.Claims}
			if err := printJSON(env.stdout, out); err != nil {
				return err
			}
		} else {
			printVerdict(env.stdout, vd)
		}
		if !vd.Verified {
			return &exitError{code: 1}
		}
		return nil
	}
}

func printVerdict(w io.Writer, vd *attest.Verdict) {
	status := "VERIFIED"
	if !vd.Verified {
		status = "REFUSED"
	}
	if vd.Simulated {
		status += " (SIMULATED AMD root: not evidence of real hardware)"
	}
	fmt.Fprintln(w, status)
	if c := vd.Claims; c != nil {
		fmt.Fprintf(w, "  product       %s\n  signer        %s\n", orDash(string(c.Product)), c.Signer)
		identity := "none (VLEK)"
		if c.Signer != attest.VLEK {
			identity = orDash(vd.HardwareID.String())
		}
		fmt.Fprintf(w, "  chip identity %s\n  chip id       %s\n  measurement   %s\n", identity, c.ChipID, c.Measurement)
		fmt.Fprintf(w, "  report data   %s\n  host data     %s\n", c.ReportData, c.HostData)
		fmt.Fprintf(w, "  id key        %s\n  author key    %s\n", c.IDKeyDigest, c.AuthorKeyDigest)
		fmt.Fprintf(w, "  family id     %s\n  image id      %s\n", c.FamilyID, c.ImageID)
		fmt.Fprintf(w, "  report id     %s\n  vmpl          %d\n  guest svn     %d\n", c.ReportID, c.VMPL, c.GuestSVN)
		p := c.Policy
		fmt.Fprintf(w, "  policy        %#x (debug=%v migration_agent=%v smt=%v single_socket=%v abi=%d.%d)\n",
			p.Raw, p.Debug, p.MigrationAgent, p.SMT, p.SingleSocket, p.ABIMajor, p.ABIMinor)
		fmt.Fprintf(w, "  platform      %#x (smt=%v tsme=%v)\n", c.PlatformInfo.Raw, c.PlatformInfo.SMTEnabled, c.PlatformInfo.TSMEEnabled)
		fmt.Fprintf(w, "  firmware      %s\n", c.FirmwareVersion)
		for _, t := range []struct {
			name string
			tcb  attest.TCB
		}{{"reported tcb", c.ReportedTCB}, {"current tcb", c.CurrentTCB}, {"committed tcb", c.CommittedTCB}, {"launch tcb", c.LaunchTCB}} {
			fmt.Fprintf(w, "  %-13s %#016x (%s)\n", t.name, t.tcb.Raw, t.tcb)
		}
	}
	fmt.Fprintf(w, "  evidence      sha256:%s\n", vd.EvidenceHash)
	if vd.TPM != nil {
		printTPM(w, vd.TPM)
	}
	for _, r := range vd.Reasons {
		fmt.Fprintf(w, "refused: %s: %s\n", r.Code, r.Message)
	}
	for _, r := range vd.Warnings {
		fmt.Fprintf(w, "note: %s: %s\n", r.Code, r.Message)
	}
}

func printTPM(w io.Writer, st *attest.TPMState) {
	fmt.Fprintf(w, "  vTPM          secure_boot=%v hash=%s ak=%s trust=%s\n", st.SecureBoot, orDash(st.Hash), st.AKDigest, orDash(st.AKTrust))
	if st.KernelCmdline != "" {
		fmt.Fprintf(w, "  kernel cmdline %s\n", st.KernelCmdline)
	}
	idx := make([]int, 0, len(st.PCRs))
	for i := range st.PCRs {
		idx = append(idx, int(i))
	}
	sort.Ints(idx)
	for _, i := range idx {
		fmt.Fprintf(w, "  pcr %-2d        %s\n", i, st.PCRs[uint32(i)])
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type tpmJSON struct {
	Verified bool            `json:"verified"`
	Reasons  []attest.Reason `json:"reasons"`
	*attest.TPMState
}

func attestVerifyTPM(env *cliEnv, fs *flag.FlagSet) func([]string) error {
	file := fs.String("attestation", "", "go-tpm-tools attestation `FILE` (binary protobuf)")
	nonceHex := fs.String("nonce", "", "the nonce the quote must be over (hex)")
	gce := fs.Bool("gce", false, "trust the attestation key through Google's EK/AK roots (Google Cloud)")
	akHex := fs.String("ak-digest", "", "trust the attestation key with this SHA-256 digest of its public area (hex)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	return func([]string) error {
		if *file == "" || *nonceHex == "" {
			return &exitError{code: 2, msg: "--attestation FILE and --nonce HEX are required"}
		}
		nonce, err := decodeHexFlag("nonce", *nonceHex, 0)
		if err != nil {
			return err
		}
		var ak []byte
		if *akHex != "" {
			if ak, err = decodeHexFlag("ak-digest", *akHex, 32); err != nil {
				return err
			}
		}
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(io.LimitReader(f, attest.MaxTPMSize+1))
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		if len(raw) > attest.MaxTPMSize {
			return fmt.Errorf("%s: larger than %d bytes", *file, attest.MaxTPMSize)
		}
		if err := attest.CheckTPM(raw); err != nil {
			return fmt.Errorf("%s: %v", *file, err)
		}
		v, err := attest.NewVerifier(context.Background(), attest.Options{})
		if err != nil {
			return err
		}
		st, reasons := v.VerifyTPM(raw, nonce, ak, *gce, nil)
		if reasons == nil {
			reasons = []attest.Reason{}
		}
		ok := len(reasons) == 0
		if *asJSON {
			if err := printJSON(env.stdout, tpmJSON{Verified: ok, Reasons: reasons, TPMState: st}); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(env.stdout, map[bool]string{true: "VERIFIED", false: "REFUSED"}[ok])
			if st != nil {
				printTPM(env.stdout, st)
			}
			for _, r := range reasons {
				fmt.Fprintf(env.stdout, "refused: %s: %s\n", r.Code, r.Message)
			}
		}
		if !ok {
			return &exitError{code: 1}
		}
		return nil
	}
}

func attestFetchCerts(env *cliEnv, fs *flag.FlagSet) func([]string) error {
	report := fs.String("report", "", "take product, chip ID and TCB from this raw report `FILE`")
	product := fs.String("product", "", "product: Milan, Genoa or Turin")
	chipHex := fs.String("chip-id", "", "chip ID (128 hex digits)")
	tcbHex := fs.String("tcb", "", "reported TCB (16 hex digits)")
	vlek := fs.Bool("vlek", false, "fetch the VLEK chain (ASVK, ARK) and CRL instead of the VCEK's")
	base := fs.String("kds", "", "base `URL` of a KDS mirror (default: AMD's key server)")
	from := fs.String("from", "", "import certificate and CRL files from `DIR` instead of fetching")
	devSim := fs.Bool("dev-trust-simulated-amd-root", false, "DEVELOPMENT ONLY: accept CRLs signed by the simulated AMD root")
	return func([]string) error {
		ctx, db, done, err := openCommandStore(env)
		if err != nil {
			return err
		}
		defer done()
		cache := attest.NewCertCache(db)
		o := attest.Options{Certs: cache}
		if *devSim {
			o.TrustSimulatedRoot, o.SimulatedRoots = true, sim.Root().TrustedRoots()
		}
		v, err := attest.NewVerifier(ctx, o)
		if err != nil {
			return err
		}
		if *from != "" {
			return importCertDir(ctx, env, v, cache, *from)
		}
		req := attest.KDSRequest{BaseURL: *base}
		if *vlek {
			req.Signer = attest.VLEK
		}
		if *report != "" {
			raw, err := attest.ReadReportFile(*report)
			if err != nil {
				return err
			}
			c, err := attest.ReportClaims(raw)
			if err != nil {
				return err
			}
			req.Product, req.ChipID, req.TCB = c.Product, c.ChipID, c.ReportedTCB.Raw
			if c.Signer == attest.VLEK {
				req.Signer, req.ChipID = attest.VLEK, nil
			}
		}
		if *product != "" {
			p, err := attest.ParseProduct(*product)
			if err != nil {
				return &exitError{code: 2, msg: "--product: " + err.Error()}
			}
			req.Product = p
		}
		if *chipHex != "" {
			if req.ChipID, err = decodeHexFlag("chip-id", *chipHex, attest.ChipIDSize); err != nil {
				return err
			}
			b, err := decodeHexFlag("tcb", *tcbHex, 8)
			if err != nil {
				return err
			}
			req.TCB = 0
			for _, x := range b {
				req.TCB = req.TCB<<8 | uint64(x)
			}
		}
		if req.Product == attest.Unknown {
			return &exitError{code: 2, msg: "name the product (--product) or give a version 3 report (--report)"}
		}
		res, err := attest.FetchKDS(ctx, attest.HTTPFetcher{}, req)
		if err != nil {
			return err
		}
		for _, der := range res.Certs {
			info, err := cache.PutCert(ctx, der, "kds")
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "cached %s %s (%s)\n", info.Product, strings.ToUpper(info.Kind), info.Fingerprint[:16])
		}
		p, err := v.ImportCRL(ctx, cache, res.CRL, "kds")
		if err != nil {
			return fmt.Errorf("CRL: %w", err)
		}
		fmt.Fprintf(env.stdout, "cached %s CRL\n", p)
		return nil
	}
}

// importCertDir imports certificate and CRL files from a directory.
func importCertDir(ctx context.Context, env *cliEnv, v *attest.Verifier, cache *attest.CertCache, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		path := filepath.Join(dir, name)
		lower := strings.ToLower(name)
		if strings.HasSuffix(lower, ".crl") || strings.HasPrefix(lower, "crl.") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if blk, _ := pem.Decode(b); blk != nil && blk.Type == "X509 CRL" {
				b = blk.Bytes
			}
			p, err := v.ImportCRL(ctx, cache, b, name)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			fmt.Fprintf(env.stdout, "cached %s CRL from %s\n", p, name)
			n++
			continue
		}
		ext := filepath.Ext(lower)
		if ext != ".pem" && ext != ".der" && ext != ".crt" && ext != ".cer" {
			continue
		}
		ders, err := attest.ReadCertFile(path)
		if err != nil {
			return err
		}
		for _, der := range ders {
			info, err := cache.PutCert(ctx, der, name)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			fmt.Fprintf(env.stdout, "cached %s %s from %s\n", info.Product, strings.ToUpper(info.Kind), name)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%s: no certificate or CRL files", dir)
	}
	return nil
}

// readLimitedFile reads at most limit bytes of path and refuses more.
func readLimitedFile(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}
