package custody

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/store"
)

// Auto-unseal: beside the officers' passphrase envelopes, the master key
// may be stored wrapped by a key that lives in a hardware token (PKCS#11,
// see backend/hsm), so that a console process that can log in to the token
// unlocks itself at start, without an officer, like Vault's auto-unseal.
// The token's PIN is never stored: it comes from a file or the environment
// of the process. The wrapped master key is a row of wrapped_keys:
//
//	name    = "auto-unseal"
//	public  = JSON UnsealInfo (which token, key and mechanism; no secret)
//	wrapped = the token's wrapping of the 32-byte master key,
//	          AAD = "keyholder-auto-unseal-v1" 0 console_id
//
// Setting it up or removing it is an admin's custody action
// (authorizeAutoUnsealChange).

// KeyWrapper wraps and unwraps with a key that never leaves its token
// (*hsm.Token implements it).
type KeyWrapper interface {
	Wrap(plaintext, ad []byte) ([]byte, error)
	Unwrap(wrapped, ad []byte) ([]byte, error)
}

// UnsealInfo describes the auto-unseal key (stored in the clear: no secret).
type UnsealInfo struct {
	Kind       string `json:"kind"` // "pkcs11"
	TokenLabel string `json:"token_label"`
	KeyLabel   string `json:"key_label"`
	Mechanism  string `json:"mechanism"` // e.g. CKM_AES_GCM
	// Module is the path of the token's PKCS#11 library, as given, so that
	// approving admins see which library (a SoftHSM2 or a real HSM).
	Module string `json:"module,omitempty"`
}

const autoUnsealName = "auto-unseal"

// ErrNoAutoUnseal means auto-unseal is not set up on this console.
var ErrNoAutoUnseal = errors.New("auto-unseal is not set up")

func autoUnsealAAD(consoleID string) []byte {
	return aad("keyholder-auto-unseal-v1", consoleID)
}

// authorizeAutoUnsealChange is the single gate for setting up or removing
// auto-unseal (action is "setup" or "remove") through SetupAutoUnseal and
// RemoveAutoUnseal: the officer must be an admin, and the only admin. With
// two admins or more, the change is an admin action under the two-person
// rule (backend/quorum), which calls SetAutoUnsealTx and RemoveAutoUnsealTx
// itself once its approvals are in.
func authorizeAutoUnsealChange(ctx context.Context, tx *sql.Tx, officer, action string) error {
	if _, err := requireRole(ctx, tx, officer, RoleAdmin); err != nil {
		return err
	}
	n, err := CountAdmins(ctx, tx)
	if err != nil {
		return err
	}
	if n > 1 {
		return fmt.Errorf("%w: with %d admins, auto-unseal %s needs a second admin's approval (two-person rule)", ErrForbidden, n, action)
	}
	return nil
}

// AutoUnsealKey is the master key wrapped by a token's key (PrepareAutoUnseal),
// made only when the change is carried out, right before it is stored (under
// the two-person rule: when the approved setup is collected, never while it
// waits): no plaintext key.
type AutoUnsealKey struct {
	Info    UnsealInfo `json:"info"`
	Wrapped []byte     `json:"wrapped"`
}

// PrepareAutoUnseal wraps the master key with w and checks, by unwrapping
// once, that the token gives it back. The service must be unlocked.
func (s *Service) PrepareAutoUnseal(w KeyWrapper, info UnsealInfo) (AutoUnsealKey, error) {
	k := AutoUnsealKey{Info: info}
	err := s.withMaster(func(master []byte, cid string) error {
		wrapped, err := w.Wrap(master, autoUnsealAAD(cid))
		if err != nil {
			return fmt.Errorf("auto-unseal: wrap the master key: %w", err)
		}
		back, err := w.Unwrap(wrapped, autoUnsealAAD(cid))
		ok := err == nil && subtle.ConstantTimeCompare(back, master) == 1
		clear(back)
		if !ok {
			return fmt.Errorf("auto-unseal: the token does not give back what it wrapped: %v", err)
		}
		k.Wrapped = wrapped
		return nil
	})
	return k, err
}

// SetAutoUnsealTx stores a prepared auto-unseal key (replacing an earlier
// one), audited as actor. It checks the change, not the actor.
func (s *Service) SetAutoUnsealTx(ctx context.Context, tx *sql.Tx, actor string, k AutoUnsealKey, now time.Time) error {
	if len(k.Wrapped) == 0 || k.Info.Kind == "" {
		return fmt.Errorf("%w: empty auto-unseal key", ErrInvalid)
	}
	cid, err := consoleID(ctx, tx)
	if err != nil {
		return err
	}
	pub, err := json.Marshal(k.Info)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO wrapped_keys(name, public, wrapped, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET public = excluded.public, wrapped = excluded.wrapped, created_at = excluded.created_at`,
		autoUnsealName, pub, k.Wrapped, store.Time(now)); err != nil {
		return fmt.Errorf("store the auto-unseal key: %w", store.Classify(err))
	}
	_, err = s.log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "custody.auto_unseal.setup", Subject: cid,
		Decision: "ok", Reason: fmt.Sprintf("master key wrapped by %s key %q on token %q (%s)", k.Info.Kind, k.Info.KeyLabel, k.Info.TokenLabel, k.Info.Mechanism)})
	return err
}

// RemoveAutoUnsealTx deletes the token-wrapped master key, audited as
// actor; ErrNoAutoUnseal when there is none.
func (s *Service) RemoveAutoUnsealTx(ctx context.Context, tx *sql.Tx, actor string, now time.Time) error {
	cid, err := consoleID(ctx, tx)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM wrapped_keys WHERE name = ?`, autoUnsealName)
	if err != nil {
		return fmt.Errorf("remove the auto-unseal key: %w", store.Classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNoAutoUnseal
	}
	_, err = s.log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "custody.auto_unseal.remove", Subject: cid,
		Decision: "ok", Reason: "token-wrapped master key removed; starts need an officer login"})
	return err
}

// SetupAutoUnseal wraps the master key with w and stores it, as officer
// (who must pass authorizeAutoUnsealChange). The service must be unlocked.
func (s *Service) SetupAutoUnseal(ctx context.Context, officer string, w KeyWrapper, info UnsealInfo) error {
	k, err := s.PrepareAutoUnseal(w, info)
	if err != nil {
		return err
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := authorizeAutoUnsealChange(ctx, tx, officer, "setup"); err != nil {
			return err
		}
		return s.SetAutoUnsealTx(ctx, tx, officerActor(officer), k, s.now())
	})
}

// RemoveAutoUnseal deletes the token-wrapped master key, as officer (who
// must pass authorizeAutoUnsealChange): the next start stays locked until
// an officer logs in. The service need not be unlocked.
func (s *Service) RemoveAutoUnseal(ctx context.Context, officer string) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := authorizeAutoUnsealChange(ctx, tx, officer, "remove"); err != nil {
			return err
		}
		return s.RemoveAutoUnsealTx(ctx, tx, officerActor(officer), s.now())
	})
}

// AutoUnsealTx returns the stored auto-unseal key as q (a transaction)
// sees it, or ErrNoAutoUnseal. Wrapped is the token's wrapping, no
// plaintext.
func AutoUnsealTx(ctx context.Context, q Queryer) (AutoUnsealKey, error) {
	info, wrapped, err := readAutoUnseal(ctx, q)
	return AutoUnsealKey{Info: info, Wrapped: wrapped}, err
}

// AutoUnsealInfo returns the auto-unseal setup, or ErrNoAutoUnseal.
func (s *Service) AutoUnsealInfo(ctx context.Context) (UnsealInfo, error) {
	info, _, err := s.autoUnsealRow(ctx)
	return info, err
}

func (s *Service) autoUnsealRow(ctx context.Context) (UnsealInfo, []byte, error) {
	return readAutoUnseal(ctx, s.db)
}

func readAutoUnseal(ctx context.Context, q Queryer) (UnsealInfo, []byte, error) {
	var info UnsealInfo
	var pub, wrapped []byte
	err := q.QueryRowContext(ctx, `SELECT public, wrapped FROM wrapped_keys WHERE name = ?`, autoUnsealName).Scan(&pub, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return info, nil, ErrNoAutoUnseal
	}
	if err != nil {
		return info, nil, fmt.Errorf("read the auto-unseal key: %w", store.Classify(err))
	}
	if err := json.Unmarshal(pub, &info); err != nil {
		return info, nil, fmt.Errorf("read the auto-unseal key: bad description: %w", err)
	}
	return info, wrapped, nil
}

// AutoUnseal unlocks the service with the token-wrapped master key: w
// unwraps it and the key check value confirms it. It does nothing when the
// service is unlocked already. When it fails, the service stays locked and
// the reason is kept for State (LockedReason) and audited. No officer is
// involved.
func (s *Service) AutoUnseal(ctx context.Context, w KeyWrapper) error {
	if s.Unlocked() {
		return nil
	}
	err := s.autoUnseal(ctx, w)
	if err != nil {
		s.setLockedReason("auto-unseal failed: " + err.Error())
		cid, _ := consoleID(ctx, s.db)
		s.log.AppendDB(ctx, audit.Entry{At: s.now(), Actor: "system:auto-unseal", Action: "custody.auto_unseal", Subject: cid,
			Decision: "deny", Reason: err.Error()})
		return err
	}
	s.setLockedReason("")
	cid, _ := consoleID(ctx, s.db)
	s.log.AppendDB(ctx, audit.Entry{At: s.now(), Actor: "system:auto-unseal", Action: "custody.auto_unseal", Subject: cid,
		Decision: "ok", Reason: "unlocked with the token-wrapped master key"})
	return nil
}

func (s *Service) autoUnseal(ctx context.Context, w KeyWrapper) error {
	_, wrapped, err := s.autoUnsealRow(ctx)
	if err != nil {
		return err
	}
	cid, err := consoleID(ctx, s.db)
	if err != nil {
		return err
	}
	master, err := w.Unwrap(wrapped, autoUnsealAAD(cid))
	if err != nil {
		return fmt.Errorf("the token does not open the stored master key: %w", err)
	}
	_, ok, err := verifyMaster(ctx, s.db, master)
	if err == nil && !ok {
		err = errors.New("the token's key opened a value that is not this console's master key")
	}
	if err != nil {
		clear(master)
		return err
	}
	return s.adopt(ctx, master, cid)
}

// SetLockedReason records why the service is locked (for example "auto-
// unseal is set up but no token PIN was given"), shown by State until the
// service unlocks.
func (s *Service) SetLockedReason(reason string) { s.setLockedReason(reason) }

func (s *Service) setLockedReason(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lockedReason = reason
}

// LockedReason says why the service is locked, when something tried to
// unlock it without an officer and could not; "" otherwise (and always
// while unlocked).
func (s *Service) LockedReason() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.master != nil {
		return ""
	}
	return s.lockedReason
}
