// Package images is the console's registry of VM images: each image an
// officer prepared or registered, to which reference values and encrypted
// volumes belong.
package images

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"keyholder/backend/store"
)

// Image is one registered image.
type Image struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	Volumes     int       `json:"volumes"`
	Guests      int       `json:"guests"`
}

// ErrInvalidName is returned for an empty or overlong image name.
var ErrInvalidName = errors.New("image name must be 1 to 64 printable characters")

// ErrNameTaken is returned when an image with the same name exists.
var ErrNameTaken = errors.New("an image with that name already exists")

// Service reads and writes the image registry.
type Service struct{ db *store.DB }

// New returns an image service over db.
func New(db *store.DB) *Service { return &Service{db: db} }

// List returns every image, newest first.
func (s *Service) List(ctx context.Context) ([]Image, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT i.id, i.name, i.description, i.created_at, i.created_by,
		(SELECT COUNT(*) FROM volumes v WHERE v.image_id = i.id),
		(SELECT COUNT(*) FROM vms g WHERE g.image_id = i.id)
		FROM images i ORDER BY i.created_at DESC, i.name`)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", store.Classify(err))
	}
	defer rows.Close()
	out := []Image{}
	for rows.Next() {
		var im Image
		var created string
		if err := rows.Scan(&im.ID, &im.Name, &im.Description, &created, &im.CreatedBy, &im.Volumes, &im.Guests); err != nil {
			return nil, err
		}
		im.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
		out = append(out, im)
	}
	return out, rows.Err()
}

// CreateTx registers a new image inside tx and returns it.
func CreateTx(ctx context.Context, tx *sql.Tx, now time.Time, name, description, by string) (Image, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Image{}, ErrInvalidName
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE name = ?`, name).Scan(&n); err != nil {
		return Image{}, store.Classify(err)
	}
	if n > 0 {
		return Image{}, fmt.Errorf("%w: %q", ErrNameTaken, name)
	}
	im := Image{ID: store.NewID("img"), Name: name, Description: description, CreatedAt: now.UTC(), CreatedBy: by}
	_, err := tx.ExecContext(ctx, `INSERT INTO images(id, name, description, created_at, created_by) VALUES (?, ?, ?, ?, ?)`,
		im.ID, im.Name, im.Description, store.Time(im.CreatedAt), im.CreatedBy)
	if err != nil {
		return Image{}, fmt.Errorf("create image: %w", store.Classify(err))
	}
	return im, nil
}
