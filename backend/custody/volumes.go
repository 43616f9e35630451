// Package custody keeps the console's keys: the master key (only ever stored
// wrapped), the officers who can unlock it, and the per-volume release
// secrets with their generations.
package custody

import (
	"context"
	"fmt"
	"time"

	"keyholder/backend/store"
)

// Volume is an encrypted volume as the officer sees it. It never carries key
// material.
type Volume struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	ImageID           string    `json:"image_id"`
	ImageName         string    `json:"image_name"`
	Status            string    `json:"status"`
	CurrentGeneration int       `json:"current_generation"`
	CreatedAt         time.Time `json:"created_at"`
}

// ListVolumes returns every volume, newest first.
func ListVolumes(ctx context.Context, db *store.DB) ([]Volume, error) {
	rows, err := db.QueryContext(ctx, `SELECT v.id, v.name, COALESCE(v.image_id, ''), COALESCE(i.name, ''),
		v.status, v.current_generation, v.created_at
		FROM volumes v LEFT JOIN images i ON i.id = v.image_id ORDER BY v.created_at DESC, v.id`)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", store.Classify(err))
	}
	defer rows.Close()
	out := []Volume{}
	for rows.Next() {
		var v Volume
		var created string
		if err := rows.Scan(&v.ID, &v.Name, &v.ImageID, &v.ImageName, &v.Status, &v.CurrentGeneration, &created); err != nil {
			return nil, err
		}
		v.CreatedAt, _ = store.ParseTime(created)
		out = append(out, v)
	}
	return out, rows.Err()
}
