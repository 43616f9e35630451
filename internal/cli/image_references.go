package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/images"
	"keyholder/backend/quorum"
	"keyholder/backend/store"
)

// imageReferencesSynopsis is the usage of `keyholder image references`.
const imageReferencesSynopsis = `keyholder image references IMAGE [--json] [--data DIR]
keyholder image references set IMAGE --measurement HEX[,HEX...] [--product P] [--comment C]
      [--officer NAME] [--passphrase-file F] [--data DIR]
keyholder image references import IMAGE --file F [--comment C]
      [--officer NAME] [--passphrase-file F] [--data DIR]`

// imageReferencesUsage is the part of `keyholder image`'s help about
// reference values.
const imageReferencesUsage = `references lists an image's reference values (IMAGE is its name or ID).
set and import record a new version before any guest boots, so that no
first boot has to pin them: set takes the launch measurements (SHA-384,
hex; for example from sev-snp-measure) and keeps the other fields of the
newest version; import reads a reference values file, the format that
'keyholder attest verify --reference' reads. Admins only; audited.
`

// referenceFlags are image references' own flags.
type referenceFlags struct {
	measurements, product, comment, file *string
}

// runImageReferences runs `keyholder image references ...` (args after
// "references").
func runImageReferences(env *cliEnv, of *officerFlags, rf referenceFlags, asJSON bool, args []string) error {
	ctx, cancel := signalContext()
	defer cancel()
	if len(args) == 1 {
		return listReferences(ctx, env, args[0], asJSON)
	}
	if len(args) != 2 || (args[0] != "set" && args[0] != "import") {
		return &exitError{code: 2, msg: "usage: keyholder image references IMAGE | set IMAGE --measurement HEX | import IMAGE --file F"}
	}
	var rv *attest.ReferenceValues
	switch args[0] {
	case "set":
		if strings.TrimSpace(*rf.measurements) == "" {
			return &exitError{code: 2, msg: "references set needs --measurement HEX[,HEX...]"}
		}
	case "import":
		if *rf.file == "" {
			return &exitError{code: 2, msg: "references import needs --file F"}
		}
		b, err := os.ReadFile(*rf.file)
		if err != nil {
			return fmt.Errorf("read reference values: %w", err)
		}
		if rv, err = attest.ParseReferenceValues(b); err != nil {
			return fmt.Errorf("reference values file %s: %w", *rf.file, err)
		}
	}
	db, svc, o, done, err := of.openUnlocked(ctx, env)
	if err != nil {
		return err
	}
	defer done()
	if o.Role != custody.RoleAdmin {
		return fmt.Errorf("officer %s is %s: only admins change reference values", o.Name, o.Role)
	}
	imageID, err := images.Resolve(ctx, db, args[1])
	if err != nil {
		return err
	}
	if rv == nil {
		if rv, err = referencesFromFlags(ctx, db, imageID, *rf.measurements, *rf.product); err != nil {
			return err
		}
	}
	// Trusting reference values by hand is a custody action under the
	// two-person rule: with two or more admins it waits for another one.
	q, by := quorumFor(db, svc, o)
	act, err := q.SetReference(ctx, by, imageID, *rv, *rf.comment)
	if err != nil {
		return fmt.Errorf("store reference values of %s: %w", args[1], err)
	}
	if act.Status != quorum.StatusDone {
		waiting(env.stdout, act, "")
		return nil
	}
	vs, err := attest.NewReferences(db).List(ctx, imageID)
	if err != nil || len(vs) == 0 {
		return fmt.Errorf("read back reference values of %s: %w", args[1], err)
	}
	v := vs[0] // newest first
	fmt.Fprintf(env.stdout, "Reference values of %s: version %d (%d measurements, sha256 %s).\n", args[1], v.Version, len(v.Values.Measurements), v.Hash)
	return nil
}

// referencesFromFlags is the newest version of the image's reference
// values (or defaults) with the measurements and product replaced.
func referencesFromFlags(ctx context.Context, db *store.DB, imageID, measurements, product string) (*attest.ReferenceValues, error) {
	rv := attest.ReferenceValues{}
	if vs, err := attest.NewReferences(db).List(ctx, imageID); err != nil {
		return nil, err
	} else if len(vs) > 0 {
		rv = vs[0].Values
	}
	rv.Measurements = nil
	for _, m := range strings.Split(measurements, ",") {
		b, err := hex.DecodeString(strings.TrimSpace(m))
		if err != nil || len(b) != attest.MeasurementSize {
			return nil, &exitError{code: 2, msg: fmt.Sprintf("--measurement %q is not %d bytes of hex", m, attest.MeasurementSize)}
		}
		rv.Measurements = append(rv.Measurements, b)
	}
	if product != "" {
		p, err := attest.ParseProduct(product)
		if err != nil {
			return nil, &exitError{code: 2, msg: err.Error()}
		}
		rv.Product = p
	}
	return &rv, nil
}

func listReferences(ctx context.Context, env *cliEnv, nameOrID string, asJSON bool) error {
	db, err := openStore(ctx, env, false)
	if err != nil {
		return err
	}
	defer db.Close()
	imageID, err := images.Resolve(ctx, db, nameOrID)
	if err != nil {
		return err
	}
	vs, err := attest.NewReferences(db).List(ctx, imageID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if asJSON {
		return json.NewEncoder(env.stdout).Encode(vs)
	}
	if len(vs) == 0 {
		fmt.Fprintf(env.stdout, "Image %s has no reference values: the first boot of its guests waits for an officer and pins them.\n", nameOrID)
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tMEASUREMENTS\tPRODUCT\tBY\tCOMMENT\t")
	for _, v := range vs {
		ms := make([]string, len(v.Values.Measurements))
		for i, m := range v.Values.Measurements {
			ms[i] = m.String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t\n", v.Version, strings.Join(ms, ","), orDash(string(v.Values.Product)), v.CreatedBy, v.Comment)
	}
	return tw.Flush()
}
