package custody

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/store"
)

// Generation statuses.
const (
	GenPending    = "pending"    // made by Rotate, waiting for the agent's confirmation
	GenCurrent    = "current"    // the one routine boots receive
	GenSuperseded = "superseded" // older; kept because old backups still need it
	GenAbandoned  = "abandoned"  // a rotation that was given up before confirmation
	GenDestroyed  = "destroyed"  // its wrapped secret is erased
)

// Volume statuses.
const (
	VolumeActive    = "active"
	VolumeRevoked   = "revoked"
	VolumeDestroyed = "destroyed"
)

// SecretSize is the length of a release secret.
const SecretSize = 32

// Generation describes one release secret of a volume (never the secret).
type Generation struct {
	VolumeID    string    `json:"volume_id"`
	Generation  int       `json:"generation"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	ActivatedAt time.Time `json:"activated_at"`
}

// CreateVolume registers a volume (imageID may be "") with its generation-1
// release secret, audited, in one transaction. It returns the volume ID,
// the generation (1) and the plaintext secret, which the caller must wipe
// (clear) as soon as it is written into the LUKS2 keyslot.
func (s *Service) CreateVolume(ctx context.Context, actor, imageID, name string) (volumeID string, generation int, secret []byte, err error) {
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		volumeID, generation, secret, err = s.CreateVolumeTx(ctx, tx, actor, imageID, name)
		return err
	})
	if err != nil {
		clear(secret)
		return "", 0, nil, err
	}
	s.afterWrite(ctx)
	return volumeID, generation, secret, nil
}

// CreateVolumeTx is CreateVolume inside the caller's transaction, so that the
// caller can register more (an image, its reference values) atomically. If
// the transaction rolls back, the caller must still wipe the secret.
func (s *Service) CreateVolumeTx(ctx context.Context, tx *sql.Tx, actor, imageID, name string) (string, int, []byte, error) {
	id, secret := NewVolumeReservation()
	gen, err := s.CreateReservedVolumeTx(ctx, tx, actor, imageID, name, id, secret)
	if err != nil {
		clear(secret)
		return "", 0, nil, err
	}
	return id, gen, secret, nil
}

// NewVolumeReservation makes a volume ID and a generation-1 release secret
// for a volume that CreateReservedVolumeTx registers later: a caller that
// must write the secret (into a LUKS2 keyslot) before the registration
// transaction starts takes them here. Nothing is stored: the secret exists
// only in the caller's memory until the registration wraps and stores it,
// and the caller wipes it (clear) either way; if the registration never
// happens, whatever the secret opens is unusable.
func NewVolumeReservation() (volumeID string, secret []byte) {
	secret = make([]byte, SecretSize)
	rand.Read(secret)
	return store.NewID("vol"), secret
}

// CreateReservedVolumeTx registers, inside the caller's transaction, a
// volume whose ID and generation-1 release secret come from
// NewVolumeReservation, audited as CreateVolumeTx does. It returns the
// generation (1). The secret stays the caller's to wipe; it is stored only
// wrapped under the master key.
func (s *Service) CreateReservedVolumeTx(ctx context.Context, tx *sql.Tx, actor, imageID, name, volumeID string, secret []byte) (int, error) {
	if actor == "" {
		return 0, fmt.Errorf("%w: actor is required", ErrInvalid)
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return 0, fmt.Errorf("%w: volume name must be 1-200 characters", ErrInvalid)
	}
	if !validVolumeID(volumeID) {
		return 0, fmt.Errorf("%w: volume ID %q is not one NewVolumeReservation makes", ErrInvalid, volumeID)
	}
	if len(secret) != SecretSize {
		return 0, fmt.Errorf("%w: a release secret is %d bytes", ErrInvalid, SecretSize)
	}
	id := volumeID
	now := s.now()
	err := s.withMaster(func(master []byte, cid string) error {
		var img any
		if imageID != "" {
			img = imageID
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO volumes(id, name, image_id, status, current_generation, created_at) VALUES (?, ?, ?, 'active', 1, ?)`,
			id, name, img, store.Time(now)); err != nil {
			return fmt.Errorf("create volume: %w", store.Classify(err))
		}
		if err := insertGeneration(ctx, tx, master, cid, id, 1, GenCurrent, secret, actor, now); err != nil {
			return err
		}
		_, err := s.log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "volume.create", Subject: id, Decision: "ok",
			Reason: fmt.Sprintf("volume %q created with generation 1", name)})
		return err
	})
	if err != nil {
		return 0, err
	}
	return 1, nil
}

// validVolumeID: "vol_" and 20 lower-case hex digits, as store.NewID makes.
func validVolumeID(id string) bool {
	h, ok := strings.CutPrefix(id, "vol_")
	if !ok || len(h) != 20 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func insertGeneration(ctx context.Context, tx *sql.Tx, master []byte, cid, volumeID string, gen int, status string, secret []byte, actor string, now time.Time) error {
	wrapped := wrapWith(master, infoReleaseSecret, secret, secretAAD(cid, volumeID, gen))
	activated := ""
	if status == GenCurrent {
		activated = store.Time(now)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO volume_generations(volume_id, generation, status, wrapped, created_at, created_by, activated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, volumeID, gen, status, wrapped, store.Time(now), actor, activated)
	if err != nil {
		return fmt.Errorf("store generation %d of %s: %w", gen, volumeID, store.Classify(err))
	}
	return nil
}

func volumeStatus(ctx context.Context, q rowQueryer, volumeID string) (status string, current int, err error) {
	err = q.QueryRowContext(ctx, `SELECT status, current_generation FROM volumes WHERE id = ?`, volumeID).Scan(&status, &current)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("volume %s: %w", volumeID, store.ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("read volume %s: %w", volumeID, store.Classify(err))
	}
	return status, current, nil
}

// ReleaseSecret unwraps the release secret of one generation of a volume for
// the release engine; the caller wipes it after sealing it to the guest. It
// refuses revoked and destroyed volumes and abandoned or destroyed
// generations; which generation a guest may have is the engine's policy.
func (s *Service) ReleaseSecret(ctx context.Context, volumeID string, generation int) ([]byte, error) {
	return s.releaseSecret(ctx, s.db, volumeID, generation)
}

// ReleaseSecretTx is ReleaseSecret reading inside the caller's transaction.
func (s *Service) ReleaseSecretTx(ctx context.Context, tx *sql.Tx, volumeID string, generation int) ([]byte, error) {
	return s.releaseSecret(ctx, tx, volumeID, generation)
}

// releaseSecretSQL reads the volume and the generation in one statement
// (it runs for every release, in the release engine's writer).
const releaseSecretSQL = `SELECT v.status, g.status, g.wrapped FROM volumes v
		LEFT JOIN volume_generations g ON g.volume_id = v.id AND g.generation = ?2 WHERE v.id = ?1`

func (s *Service) releaseSecret(ctx context.Context, q rowQueryer, volumeID string, generation int) ([]byte, error) {
	var vs string
	var status sql.NullString
	var wrapped []byte
	err := q.QueryRowContext(ctx, releaseSecretSQL, volumeID, generation).Scan(&vs, &status, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("volume %s: %w", volumeID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read volume %s generation %d: %w", volumeID, generation, store.Classify(err))
	}
	return s.unwrapReleased(volumeID, generation, vs, status, wrapped)
}

// QueueReleaseSecret queues ReleaseSecretTx's read in b (a caller that
// sends several statements at once, see store.Batch); once b ran, the
// returned function checks and unwraps what it read as ReleaseSecretTx
// does (the caller wipes the secret). Nothing is unwrapped unless it is
// called.
func (s *Service) QueueReleaseSecret(b *store.Batch, volumeID string, generation int) func() ([]byte, error) {
	var vs string
	var status sql.NullString
	var wrapped []byte
	found := false
	b.Query(func(scan func(...any) error) error {
		found = true
		return scan(&vs, &status, &wrapped)
	}, releaseSecretSQL, volumeID, generation)
	return func() ([]byte, error) {
		if !found {
			return nil, fmt.Errorf("volume %s: %w", volumeID, store.ErrNotFound)
		}
		return s.unwrapReleased(volumeID, generation, vs, status, wrapped)
	}
}

// unwrapReleased checks a volume's and a generation's status as read by
// releaseSecretSQL and unwraps the generation's secret.
func (s *Service) unwrapReleased(volumeID string, generation int, vs string, status sql.NullString, wrapped []byte) ([]byte, error) {
	switch vs {
	case VolumeRevoked:
		return nil, fmt.Errorf("volume %s: %w", volumeID, ErrRevoked)
	case VolumeDestroyed:
		return nil, fmt.Errorf("volume %s: %w", volumeID, ErrDestroyed)
	}
	if !status.Valid {
		return nil, fmt.Errorf("volume %s generation %d: %w", volumeID, generation, ErrNoGeneration)
	}
	switch status.String {
	case GenDestroyed:
		return nil, fmt.Errorf("volume %s generation %d: %w", volumeID, generation, ErrDestroyed)
	case GenAbandoned:
		return nil, fmt.Errorf("volume %s generation %d: %w (abandoned rotation)", volumeID, generation, ErrNoGeneration)
	}
	var secret []byte
	err := s.withMaster(func(master []byte, cid string) error {
		var err error
		secret, err = unwrapWith(master, infoReleaseSecret, wrapped, secretAAD(cid, volumeID, generation))
		if err != nil {
			return fmt.Errorf("unwrap secret of volume %s generation %d: %w (the row was altered or moved)", volumeID, generation, err)
		}
		return nil
	})
	return secret, err
}

// CurrentGeneration returns the volume's current generation and, if a
// rotation waits for confirmation, the pending one (0 if none).
func (s *Service) CurrentGeneration(ctx context.Context, volumeID string) (current, pending int, err error) {
	return currentGeneration(ctx, s.db, volumeID)
}

// CurrentGenerationTx is CurrentGeneration inside the caller's transaction.
func (s *Service) CurrentGenerationTx(ctx context.Context, tx *sql.Tx, volumeID string) (current, pending int, err error) {
	return currentGeneration(ctx, tx, volumeID)
}

// QueueCurrentGeneration queues CurrentGenerationTx's statement in b (a
// caller that sends several statements at once, see store.Batch); once b
// ran, the returned function gives its result.
func (s *Service) QueueCurrentGeneration(b *store.Batch, volumeID string) func() (current, pending int, err error) {
	var cur int
	var pend sql.NullInt64
	found := false
	b.Query(func(scan func(...any) error) error {
		found = true
		return scan(&cur, &pend)
	}, currentGenerationSQL, volumeID)
	return func() (int, int, error) {
		if !found {
			return 0, 0, fmt.Errorf("volume %s: %w", volumeID, store.ErrNotFound)
		}
		return cur, int(pend.Int64), nil
	}
}

const currentGenerationSQL = `SELECT current_generation,
		(SELECT MAX(generation) FROM volume_generations WHERE volume_id = ?1 AND status = 'pending')
		FROM volumes WHERE id = ?1`

func currentGeneration(ctx context.Context, q rowQueryer, volumeID string) (int, int, error) {
	var cur int
	var pending sql.NullInt64
	err := q.QueryRowContext(ctx, currentGenerationSQL, volumeID).Scan(&cur, &pending)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("volume %s: %w", volumeID, store.ErrNotFound)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read generations of volume %s: %w", volumeID, store.Classify(err))
	}
	return cur, int(pending.Int64), nil
}

// Rotate creates generation N+1 of an active volume as pending: the guest
// agent receives it beside the current one, adds a keyslot for it and
// confirms; only ConfirmRotation makes it current, so a guest that dies half
// way still opens with the old one. A second Rotate while one is pending
// returns ErrRotationPending (and the pending generation).
func (s *Service) Rotate(ctx context.Context, actor, volumeID string) (int, error) {
	var gen int
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		gen, err = s.RotateTx(ctx, tx, actor, volumeID)
		return err
	})
	if err == nil {
		s.afterWrite(ctx)
	}
	return gen, err
}

// RotateTx is Rotate inside the caller's transaction.
func (s *Service) RotateTx(ctx context.Context, tx *sql.Tx, actor, volumeID string) (int, error) {
	vs, _, err := volumeStatus(ctx, tx, volumeID)
	if err != nil {
		return 0, err
	}
	if vs != VolumeActive {
		return 0, fmt.Errorf("rotate volume %s: %w", volumeID, statusErr(vs))
	}
	_, pending, err := currentGeneration(ctx, tx, volumeID)
	if err != nil {
		return 0, err
	}
	if pending != 0 {
		return pending, fmt.Errorf("rotate volume %s: %w (generation %d)", volumeID, ErrRotationPending, pending)
	}
	var max int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(generation), 0) FROM volume_generations WHERE volume_id = ?`, volumeID).Scan(&max); err != nil {
		return 0, fmt.Errorf("read generations: %w", store.Classify(err))
	}
	gen := max + 1
	now := s.now()
	secret := make([]byte, SecretSize)
	rand.Read(secret)
	defer clear(secret)
	err = s.withMaster(func(master []byte, cid string) error {
		if err := insertGeneration(ctx, tx, master, cid, volumeID, gen, GenPending, secret, actor, now); err != nil {
			return err
		}
		_, err := s.log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "volume.rotate", Subject: volumeID, Decision: "pending",
			Reason: fmt.Sprintf("generation %d created; waits for the agent's confirmation", gen)})
		return err
	})
	if err != nil {
		return 0, err
	}
	return gen, nil
}

func statusErr(vs string) error {
	if vs == VolumeDestroyed {
		return ErrDestroyed
	}
	return ErrRevoked
}

// ConfirmRotation makes a pending generation current (after the guest agent
// confirmed that the volume opens with it); the previous current generation
// becomes superseded and is kept.
func (s *Service) ConfirmRotation(ctx context.Context, actor, volumeID string, generation int) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error { return s.ConfirmRotationTx(ctx, tx, actor, volumeID, generation) })
	if err == nil {
		s.afterWrite(ctx)
	}
	return err
}

// ConfirmRotationTx is ConfirmRotation inside the caller's transaction.
func (s *Service) ConfirmRotationTx(ctx context.Context, tx *sql.Tx, actor, volumeID string, generation int) error {
	vs, cur, err := volumeStatus(ctx, tx, volumeID)
	if err != nil {
		return err
	}
	if vs != VolumeActive {
		return fmt.Errorf("confirm rotation of %s: %w", volumeID, statusErr(vs))
	}
	var status string
	err = tx.QueryRowContext(ctx, `SELECT status FROM volume_generations WHERE volume_id = ? AND generation = ?`, volumeID, generation).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && status != GenPending) {
		return fmt.Errorf("confirm generation %d of %s: %w", generation, volumeID, ErrNotPending)
	}
	if err != nil {
		return fmt.Errorf("read generation: %w", store.Classify(err))
	}
	now := store.Time(s.now())
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE volume_generations SET status = 'superseded' WHERE volume_id = ? AND status = 'current'`, []any{volumeID}},
		{`UPDATE volume_generations SET status = 'current', activated_at = ? WHERE volume_id = ? AND generation = ?`, []any{now, volumeID, generation}},
		{`UPDATE volumes SET current_generation = ? WHERE id = ?`, []any{generation, volumeID}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("confirm rotation: %w", store.Classify(err))
		}
	}
	_, err = s.log.Append(ctx, tx, audit.Entry{At: s.now(), Actor: actor, Action: "volume.rotation_confirmed", Subject: volumeID, Decision: "ok",
		Reason: fmt.Sprintf("generation %d is current; generation %d superseded", generation, cur)})
	return err
}

// AbandonRotation gives up a pending generation (the officer cancelled the
// rotation); its wrapped secret stays until the volume is destroyed.
func (s *Service) AbandonRotation(ctx context.Context, actor, volumeID string, generation int, reason string) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE volume_generations SET status = 'abandoned' WHERE volume_id = ? AND generation = ? AND status = 'pending'`, volumeID, generation)
		if err != nil {
			return fmt.Errorf("abandon rotation: %w", store.Classify(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("abandon generation %d of %s: %w", generation, volumeID, ErrNotPending)
		}
		_, err = s.log.Append(ctx, tx, audit.Entry{At: s.now(), Actor: actor, Action: "volume.rotation_abandoned", Subject: volumeID,
			Decision: "ok", Reason: fmt.Sprintf("generation %d abandoned: %s", generation, reason)})
		return err
	})
	if err == nil {
		s.afterWrite(ctx)
	}
	return err
}

// Revoke stops every release of the volume. Its secrets stay (wrapped) until
// an admin destroys them.
func (s *Service) Revoke(ctx context.Context, actor, volumeID, reason string) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error { return s.RevokeTx(ctx, tx, actor, volumeID, reason) })
	if err == nil {
		s.afterWrite(ctx)
	}
	return err
}

// RevokeTx is Revoke inside the caller's transaction.
func (s *Service) RevokeTx(ctx context.Context, tx *sql.Tx, actor, volumeID, reason string) error {
	vs, _, err := volumeStatus(ctx, tx, volumeID)
	if err != nil {
		return err
	}
	if vs != VolumeActive {
		return fmt.Errorf("revoke volume %s: %w", volumeID, statusErr(vs))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE volumes SET status = 'revoked' WHERE id = ?`, volumeID); err != nil {
		return fmt.Errorf("revoke volume: %w", store.Classify(err))
	}
	_, err = s.log.Append(ctx, tx, audit.Entry{At: s.now(), Actor: actor, Action: "volume.revoke", Subject: volumeID, Decision: "deny", Reason: reason})
	return err
}

// Destroy erases every wrapped secret of a revoked volume. It is a separate
// admin action: admin must be an admin officer and confirm must repeat the
// volume ID. The database runs with secure_delete, so the erased bytes are
// overwritten in the file.
func (s *Service) Destroy(ctx context.Context, admin, volumeID, confirm string) error {
	if confirm != volumeID {
		return ErrConfirmation
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := requireRole(ctx, tx, admin, RoleAdmin); err != nil {
			return err
		}
		return s.DestroyTx(ctx, tx, officerActor(admin), volumeID, s.now())
	})
	if err == nil {
		s.afterWrite(ctx)
	}
	return err
}

// Generations lists a volume's generations, newest first.
func (s *Service) Generations(ctx context.Context, volumeID string) ([]Generation, error) {
	if _, _, err := volumeStatus(ctx, s.db, volumeID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT volume_id, generation, status, created_at, created_by, activated_at
		FROM volume_generations WHERE volume_id = ? ORDER BY generation DESC`, volumeID)
	if err != nil {
		return nil, fmt.Errorf("list generations: %w", store.Classify(err))
	}
	defer rows.Close()
	out := []Generation{}
	for rows.Next() {
		var g Generation
		var created, activated string
		if err := rows.Scan(&g.VolumeID, &g.Generation, &g.Status, &created, &g.CreatedBy, &activated); err != nil {
			return nil, err
		}
		g.CreatedAt, _ = store.ParseTime(created)
		if activated != "" {
			g.ActivatedAt, _ = store.ParseTime(activated)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
