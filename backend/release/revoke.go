package release

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/fleet"
	"keyholder/backend/store"
)

// DenyRequestsOfRevokedTx is a fleet.RequestCloser.
var _ fleet.RequestCloser = DenyRequestsOfRevokedTx

// DenyRequestsOfRevokedTx denies the open release requests (pending, or
// approved and not collected) of revoked VM vmID inside the revocation's
// transaction tx, each audited in log as actor's denial with the reason why. It is
// the fleet.RequestCloser that fleet.Service.Revoke takes: the revocation
// must end the requests in its own transaction, and fleet cannot call the
// engine (the engine imports fleet).
func DenyRequestsOfRevokedTx(ctx context.Context, log *audit.Log, tx *sql.Tx, actor, vmID, why string, now time.Time) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, class, volume_id, evidence_hash FROM approval_requests WHERE vm_id = ? AND status IN ('pending', 'approved')`, vmID)
	if err != nil {
		return fmt.Errorf("open requests of %s: %w", vmID, store.Classify(err))
	}
	type open struct{ id, class, volume, evHash string }
	var rs []open
	for rows.Next() {
		var r open
		if err := rows.Scan(&r.id, &r.class, &r.volume, &r.evHash); err != nil {
			rows.Close()
			return err
		}
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	reason := "the VM was revoked"
	if why != "" {
		reason += ": " + why
	}
	for _, r := range rs {
		if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'denied', reason = ?, decided_at = ? WHERE id = ?`, reason, store.Time(now), r.id); err != nil {
			return fmt.Errorf("close request %s: %w", r.id, store.Classify(err))
		}
		if _, err := log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "release.deny", Subject: r.id, Decision: "denied",
			Reason: fmt.Sprintf("%s of %s (volume %s): %s", r.class, vmID, r.volume, reason), EvidenceHash: r.evHash}); err != nil {
			return err
		}
	}
	return nil
}
