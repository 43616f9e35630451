package app

import (
	"database/sql"
	"errors"
	"fmt"

	"keyholder/backend/attest"
	"keyholder/backend/audit"
	"keyholder/backend/custody"
)

// References lists the versions of an image's reference values, newest first.
func (i *Images) References(c Caller, imageID string) ([]attest.ReferenceVersion, error) {
	if _, err := i.session.requireOfficer(c); err != nil {
		return nil, err
	}
	vs, err := attest.NewReferences(i.db).List(i.ctx, imageID)
	return vs, toError(i.log, "list reference values", referenceError(err))
}

// SetReference stores a new version of an image's reference values (the
// measurements a guest of that image must prove, minimum TCB, policy bits).
// Old versions are kept. Admins only, with a recent authentication.
func (i *Images) SetReference(c Caller, imageID string, values attest.ReferenceValues, comment string) (attest.ReferenceVersion, error) {
	o, err := i.session.requireFresh(c, custody.RoleAdmin)
	if err != nil {
		return attest.ReferenceVersion{}, err
	}
	actor := "officer:" + o.Name
	var v attest.ReferenceVersion
	err = i.db.Tx(i.ctx, func(tx *sql.Tx) error {
		var err error
		v, err = attest.PutReferenceTx(i.ctx, tx, i.db.Now(), imageID, &values, actor, comment)
		if err != nil {
			return err
		}
		_, err = audit.Append(i.ctx, tx, audit.Entry{At: i.db.Now(), Actor: actor, Action: "reference.set", Subject: imageID,
			Decision: "ok", Reason: fmt.Sprintf("reference values version %d (%d measurements, sha256 %s)", v.Version, len(v.Values.Measurements), v.Hash[:16])})
		return err
	})
	if err == nil {
		i.events.Emit(EventAuditAppended, nil)
	}
	return v, toError(i.log, "store reference values", referenceError(err))
}

func referenceError(err error) error {
	if errors.Is(err, attest.ErrInvalidReference) {
		return &Error{Code: CodeInvalid, Message: err.Error()}
	}
	return err
}
