package custody

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"keyholder/backend/audit"
	"keyholder/backend/shamir"
	"keyholder/backend/store"
)

// ErrWrongShares means the shares combine, but not to this console's master
// key (shares of another console, or a share altered consistently).
var ErrWrongShares = errors.New("the shares do not rebuild this console's master key")

// SplitRecovery splits the master key into n recovery shares, any m of which
// rebuild it (see Recover). admin must be an admin officer and the service
// unlocked. The shares are returned as printable text; the caller shows
// them once and keeps no copy. The audit entry records M, N and the split's
// identifier, never a share.
func (s *Service) SplitRecovery(ctx context.Context, admin string, m, n int) ([]string, error) {
	var out []string
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := requireRole(ctx, tx, admin, RoleAdmin); err != nil {
			return err
		}
		var err error
		out, err = s.SplitRecoveryTx(ctx, tx, officerActor(admin), m, n)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.afterWrite(ctx)
	return out, nil
}

// Recover rebuilds access from recovery shares: it parses them (a typo is
// reported per share), combines them, checks the result against the
// console's key check value, and gives officer a new envelope under
// newPassphrase (an existing officer keeps their role; a new name becomes
// an admin). The service is unlocked afterwards. Nothing changes on error.
func (s *Service) Recover(ctx context.Context, shareTexts []string, officer string, newPassphrase []byte) (Officer, error) {
	if err := checkName(officer); err != nil {
		return Officer{}, err
	}
	if err := checkPassphrase(newPassphrase); err != nil {
		return Officer{}, err
	}
	shares := make([]shamir.Share, 0, len(shareTexts))
	defer func() {
		for _, sh := range shares {
			clear(sh.Value)
		}
	}()
	for i, t := range shareTexts {
		sh, err := shamir.Parse(t)
		if err != nil {
			return Officer{}, fmt.Errorf("share %d: %w", i+1, err)
		}
		shares = append(shares, sh)
	}
	master, err := shamir.Combine(shares)
	if err != nil {
		return Officer{}, fmt.Errorf("combine shares: %w", err)
	}
	cid, ok, err := verifyMaster(ctx, s.db, master)
	if err == nil && (!ok || len(master) != keySize) {
		err = ErrWrongShares
		s.log.AppendDB(ctx, audit.Entry{At: s.now(), Actor: officerActor(officer), Action: "recovery.use", Decision: "deny", Reason: "shares do not rebuild the master key"})
	}
	if err != nil {
		clear(master)
		return Officer{}, err
	}
	now := s.now()
	o := Officer{ID: store.NewID("off"), Name: officer, Role: RoleAdmin, CreatedAt: now}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		r, err := findOfficer(ctx, tx, officer)
		switch {
		case err == nil:
			o = r.Officer
			p := s.opts.KDF
			salt, wrapped := wrapMaster(master, newPassphrase, p, cid, r.ID)
			if _, err := tx.ExecContext(ctx, `UPDATE officers SET kdf_time = ?, kdf_memory_kib = ?, kdf_threads = ?, salt = ?, wrapped_master = ?,
				failed_attempts = 0, next_attempt_at = '' WHERE id = ?`, p.Time, p.MemoryKiB, p.Threads, salt, wrapped, r.ID); err != nil {
				return fmt.Errorf("store envelope: %w", store.Classify(err))
			}
		case errors.Is(err, store.ErrNotFound):
			if err := insertOfficer(ctx, tx, o, master, newPassphrase, s.opts.KDF, cid); err != nil {
				return err
			}
		default:
			return err
		}
		_, err = s.log.Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(officer), Action: "recovery.use", Subject: o.ID, Decision: "ok",
			Reason: fmt.Sprintf("access rebuilt from %d recovery shares; new passphrase for %s (%s)", len(shares), officer, o.Role)})
		return err
	})
	if err != nil {
		clear(master)
		return Officer{}, err
	}
	if err := s.adopt(ctx, master, cid); err != nil {
		return Officer{}, err
	}
	s.afterWrite(ctx)
	return o, nil
}
