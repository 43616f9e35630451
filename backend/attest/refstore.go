package attest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"keyholder/backend/store"
)

// ReferenceVersion is one stored version of an image's reference values.
type ReferenceVersion struct {
	ImageID   string          `json:"image_id"`
	Version   int             `json:"version"`
	Values    ReferenceValues `json:"values"`
	Hash      string          `json:"hash"` // hex SHA-256 of the canonical JSON
	Comment   string          `json:"comment"`
	CreatedAt time.Time       `json:"created_at"`
	CreatedBy string          `json:"created_by"`
}

// ErrInvalidReference wraps reference values that fail Validate.
var ErrInvalidReference = errors.New("invalid reference values")

// References stores reference values per image, versioned: every change adds
// a version, old versions are kept and listed.
type References struct {
	db     *store.DB
	latest store.ConfigCache[cachedRef] // LatestAt's, by image
}

// cachedRef is an image's newest reference values, or their absence (err).
type cachedRef struct {
	ref ReferenceVersion
	err error
}

// NewReferences returns the reference value store over db.
func NewReferences(db *store.DB) *References { return &References{db: db} }

// Put records rv as the image's newest version, made by `by`. Values equal to
// the newest version add nothing and return it.
func (s *References) Put(ctx context.Context, imageID string, rv *ReferenceValues, by, comment string) (ReferenceVersion, error) {
	var out ReferenceVersion
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = PutReferenceTx(ctx, tx, s.db.Now(), imageID, rv, by, comment)
		return err
	})
	return out, err
}

// PutReferenceTx is Put inside the caller's transaction, so the change and
// its audit entry commit together.
func PutReferenceTx(ctx context.Context, tx *sql.Tx, now time.Time, imageID string, rv *ReferenceValues, by, comment string) (ReferenceVersion, error) {
	if err := rv.Validate(); err != nil {
		return ReferenceVersion{}, fmt.Errorf("%w: %v", ErrInvalidReference, err)
	}
	if by == "" {
		return ReferenceVersion{}, fmt.Errorf("%w: the author of a change must be named", ErrInvalidReference)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE id = ?`, imageID).Scan(&n); err != nil {
		return ReferenceVersion{}, store.Classify(err)
	}
	if n == 0 {
		return ReferenceVersion{}, fmt.Errorf("image %q: %w", imageID, store.ErrNotFound)
	}
	body, err := json.Marshal(rv.canonical())
	if err != nil {
		return ReferenceVersion{}, err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	latest, err := latestTx(ctx, tx, imageID)
	switch {
	case err == nil && latest.Hash == hash:
		return latest, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return ReferenceVersion{}, err
	}
	out := ReferenceVersion{ImageID: imageID, Version: latest.Version + 1, Hash: hash, Comment: comment, CreatedAt: now.UTC(), CreatedBy: by}
	if err := json.Unmarshal(body, &out.Values); err != nil {
		return ReferenceVersion{}, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO reference_values(image_id, version, body, body_hash, comment, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, imageID, out.Version, string(body), hash, comment, store.Time(now), by)
	if err != nil {
		return ReferenceVersion{}, fmt.Errorf("store reference values: %w", store.Classify(err))
	}
	return out, nil
}

// Latest returns the image's newest version, or store.ErrNotFound.
func (s *References) Latest(ctx context.Context, imageID string) (ReferenceVersion, error) {
	return scanRef(s.db.QueryRowContext(ctx, refSelect+` WHERE image_id = ? ORDER BY version DESC LIMIT 1`, imageID))
}

// LatestAt is Latest for a caller that read the database's configuration
// version (store.ConfigVersionSQL) as n, in the snapshot its decision rests
// on: values parsed at version n are reused, without a query, until any
// change to reference values, policies or settings commits. n == 0 always
// reads afresh. The values returned are shared: callers must not modify
// them.
func (s *References) LatestAt(ctx context.Context, imageID string, n int64) (ReferenceVersion, error) {
	if c, ok := s.latest.Get(imageID, n); ok {
		return c.ref, c.err
	}
	// The version and the values in one statement: one snapshot.
	var read int64
	var r ReferenceVersion
	var version sql.NullInt64
	var body, hash, comment, created, by sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT cv.n, r.version, r.body, r.body_hash, r.comment, r.created_at, r.created_by
		FROM config_version cv LEFT JOIN (
			SELECT version, body, body_hash, comment, created_at, created_by FROM reference_values
			WHERE image_id = ? ORDER BY version DESC LIMIT 1) r ON 1 = 1`, imageID).
		Scan(&read, &version, &body, &hash, &comment, &created, &by)
	if err != nil {
		return r, fmt.Errorf("read reference values: %w", store.Classify(err))
	}
	if !version.Valid {
		err = fmt.Errorf("reference values: %w", store.ErrNotFound)
	} else {
		r = ReferenceVersion{ImageID: imageID, Version: int(version.Int64), Hash: hash.String, Comment: comment.String, CreatedBy: by.String}
		r.CreatedAt, _ = store.ParseTime(created.String)
		if err = json.Unmarshal([]byte(body.String), &r.Values); err != nil {
			err = fmt.Errorf("reference values %s v%d: %w", r.ImageID, r.Version, err)
		}
	}
	s.latest.Put(imageID, read, cachedRef{ref: r, err: err})
	return r, err
}

// Get returns one version, or store.ErrNotFound.
func (s *References) Get(ctx context.Context, imageID string, version int) (ReferenceVersion, error) {
	return scanRef(s.db.QueryRowContext(ctx, refSelect+` WHERE image_id = ? AND version = ?`, imageID, version))
}

// List returns every version of the image's reference values, newest first.
func (s *References) List(ctx context.Context, imageID string) ([]ReferenceVersion, error) {
	rows, err := s.db.QueryContext(ctx, refSelect+` WHERE image_id = ? ORDER BY version DESC`, imageID)
	if err != nil {
		return nil, fmt.Errorf("list reference values: %w", store.Classify(err))
	}
	defer rows.Close()
	out := []ReferenceVersion{}
	for rows.Next() {
		r, err := scanRef(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func latestTx(ctx context.Context, tx *sql.Tx, imageID string) (ReferenceVersion, error) {
	return scanRef(tx.QueryRowContext(ctx, refSelect+` WHERE image_id = ? ORDER BY version DESC LIMIT 1`, imageID))
}

const refSelect = `SELECT image_id, version, body, body_hash, comment, created_at, created_by FROM reference_values`

func scanRef(row interface{ Scan(...any) error }) (ReferenceVersion, error) {
	var r ReferenceVersion
	var body, created string
	err := row.Scan(&r.ImageID, &r.Version, &body, &r.Hash, &r.Comment, &created, &r.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("reference values: %w", store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read reference values: %w", store.Classify(err))
	}
	if err := json.Unmarshal([]byte(body), &r.Values); err != nil {
		return r, fmt.Errorf("reference values %s v%d: %w", r.ImageID, r.Version, err)
	}
	r.CreatedAt, _ = store.ParseTime(created)
	return r, nil
}
