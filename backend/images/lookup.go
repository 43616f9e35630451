package images

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"keyholder/backend/store"
)

// IDByName returns the ID of the image named name (names are unique).
func IDByName(ctx context.Context, db *store.DB, name string) (string, error) {
	var id string
	err := db.QueryRowContext(ctx, `SELECT id FROM images WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("image %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("find image %q: %w", name, store.Classify(err))
	}
	return id, nil
}

// Resolve finds an image by its ID or its name; an ID wins over a name that
// happens to equal it.
func Resolve(ctx context.Context, db *store.DB, nameOrID string) (string, error) {
	rows, err := db.QueryContext(ctx, `SELECT id FROM images WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC, id LIMIT 2`, nameOrID)
	if err != nil {
		return "", fmt.Errorf("find image %s: %w", nameOrID, store.Classify(err))
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return "", err
		}
		ids = append(ids, id)
	}
	switch {
	case len(ids) == 0:
		return "", fmt.Errorf("image %s: %w", nameOrID, store.ErrNotFound)
	case len(ids) > 1 && ids[0] != nameOrID:
		return "", fmt.Errorf("image name %s is ambiguous: use the image ID", nameOrID)
	}
	return ids[0], rows.Err()
}
