package custody

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/shamir"
	"keyholder/backend/store"
)

// This file holds the custody changes in the caller's transaction, for the
// two-person rule (backend/quorum), which decides who may make them and
// records their audit entries' actor. They check the change itself (the
// last admin stays, a volume is revoked before it is destroyed), not the
// actor's role.

// Queryer is what the lookups below read from: a *store.DB or a *sql.Tx.
type Queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// LookupOfficer returns the officer named name as q sees it.
func LookupOfficer(ctx context.Context, q Queryer, name string) (Officer, error) {
	if name == "" {
		return Officer{}, fmt.Errorf("officer %q: %w", name, store.ErrNotFound)
	}
	r, err := findOfficer(ctx, q, name)
	return r.Officer, err
}

// CountAdmins returns how many officers are admins.
func CountAdmins(ctx context.Context, q Queryer) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM officers WHERE role = 'admin'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count admins: %w", store.Classify(err))
	}
	return n, nil
}

// Envelope is a new officer's envelope of the master key, made before the
// officer is added (so the officer's passphrase is not kept while others
// approve). It holds the master key wrapped under the officer's passphrase
// (Argon2id), exactly what the officers table stores; never a plaintext key.
type Envelope struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	KDF     KDFParams `json:"kdf"`
	Salt    []byte    `json:"salt"`
	Wrapped []byte    `json:"wrapped"`
}

// PrepareEnvelope checks a new officer's name, role and passphrase and wraps
// the master key for them. The service must be unlocked.
func (s *Service) PrepareEnvelope(name string, role Role, passphrase []byte) (Envelope, error) {
	if err := checkName(name); err != nil {
		return Envelope{}, err
	}
	if !role.Valid() {
		return Envelope{}, fmt.Errorf("%w: unknown role %q", ErrInvalid, role)
	}
	if err := checkPassphrase(passphrase); err != nil {
		return Envelope{}, err
	}
	e := Envelope{ID: store.NewID("off"), Name: name, Role: role, KDF: s.opts.KDF}
	err := s.withMaster(func(master []byte, cid string) error {
		e.Salt, e.Wrapped = wrapMaster(master, passphrase, e.KDF, cid, e.ID)
		return nil
	})
	return e, err
}

// AddOfficerTx adds the officer of a prepared envelope, audited as actor.
func (s *Service) AddOfficerTx(ctx context.Context, tx *sql.Tx, actor string, e Envelope, now time.Time) (Officer, error) {
	if err := checkName(e.Name); err != nil {
		return Officer{}, err
	}
	if !e.Role.Valid() {
		return Officer{}, fmt.Errorf("%w: unknown role %q", ErrInvalid, e.Role)
	}
	if err := e.KDF.validate(); err != nil {
		return Officer{}, err
	}
	o := Officer{ID: e.ID, Name: e.Name, Role: e.Role, CreatedAt: now}
	_, err := tx.ExecContext(ctx, `INSERT INTO officers(id, name, role, kdf_time, kdf_memory_kib, kdf_threads, salt, wrapped_master, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, o.ID, o.Name, string(o.Role), e.KDF.Time, e.KDF.MemoryKiB, e.KDF.Threads, e.Salt, e.Wrapped, store.Time(now))
	if err != nil {
		if errors.Is(store.Classify(err), store.ErrConflict) {
			return Officer{}, ErrOfficerExists
		}
		return Officer{}, fmt.Errorf("store officer: %w", store.Classify(err))
	}
	_, err = s.log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "officer.add", Subject: o.ID,
		Decision: "ok", Reason: fmt.Sprintf("added %s as %s", o.Name, o.Role)})
	return o, err
}

// SetRoleTx changes an officer's role, audited as actor; the last admin
// stays an admin.
func (s *Service) SetRoleTx(ctx context.Context, tx *sql.Tx, actor, name string, role Role, now time.Time) error {
	if !role.Valid() {
		return fmt.Errorf("%w: unknown role %q", ErrInvalid, role)
	}
	r, err := findOfficer(ctx, tx, name)
	if err != nil {
		return err
	}
	if role != RoleAdmin {
		if err := keepAnAdmin(ctx, tx, r); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE officers SET role = ? WHERE id = ?`, string(role), r.ID); err != nil {
		return fmt.Errorf("set role: %w", store.Classify(err))
	}
	_, err = s.log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "officer.role", Subject: r.ID,
		Decision: "ok", Reason: fmt.Sprintf("%s: %s -> %s", name, r.Role, role)})
	return err
}

// RemoveOfficerTx deletes an officer's envelope, audited as actor; the last
// admin stays.
func (s *Service) RemoveOfficerTx(ctx context.Context, tx *sql.Tx, actor, name string, now time.Time) error {
	r, err := findOfficer(ctx, tx, name)
	if err != nil {
		return err
	}
	if err := keepAnAdmin(ctx, tx, r); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM officers WHERE id = ?`, r.ID); err != nil {
		return fmt.Errorf("remove officer: %w", store.Classify(err))
	}
	_, err = s.log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "officer.remove", Subject: r.ID,
		Decision: "ok", Reason: "removed " + name})
	return err
}

// DestroyTx erases every wrapped secret of a revoked volume, audited as
// actor.
func (s *Service) DestroyTx(ctx context.Context, tx *sql.Tx, actor, volumeID string, now time.Time) error {
	vs, _, err := volumeStatus(ctx, tx, volumeID)
	if err != nil {
		return err
	}
	if vs != VolumeRevoked {
		return fmt.Errorf("destroy volume %s: %w", volumeID, ErrNotRevoked)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM volume_generations WHERE volume_id = ?`, volumeID).Scan(&n); err != nil {
		return fmt.Errorf("count secrets: %w", store.Classify(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE volume_generations SET status = 'destroyed', wrapped = ? WHERE volume_id = ?`, []byte{}, volumeID); err != nil {
		return fmt.Errorf("destroy secrets: %w", store.Classify(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE volumes SET status = 'destroyed' WHERE id = ?`, volumeID); err != nil {
		return fmt.Errorf("destroy volume: %w", store.Classify(err))
	}
	_, err = s.log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "volume.destroy", Subject: volumeID,
		Decision: "ok", Reason: strconv.Itoa(n) + " release secrets erased"})
	return err
}

// SplitRecoveryTx is SplitRecovery in the caller's transaction, audited as
// actor: the caller commits the shares' audit entry with whatever else
// records their delivery.
func (s *Service) SplitRecoveryTx(ctx context.Context, tx *sql.Tx, actor string, m, n int) ([]string, error) {
	var set [4]byte
	rand.Read(set[:])
	var out []string
	err := s.withMaster(func(master []byte, cid string) error {
		shares, err := shamir.Split(master, m, n, set, nil)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		for _, sh := range shares {
			out = append(out, sh.String())
			clear(sh.Value)
		}
		_, err = s.log.Append(ctx, tx, audit.Entry{At: s.now(), Actor: actor, Action: "recovery.split", Subject: cid,
			Decision: "ok", Reason: fmt.Sprintf("master key split into %d shares, %d needed (split %s)", n, m, hex.EncodeToString(set[:]))})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
