// Package release is the key release protocol and its decision engine: it
// classifies each guest's request, releases routine boots, and keeps the
// requests that wait for an officer.
package release

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"keyholder/backend/store"
)

// Request is a release request that needed (or needs) an officer.
type Request struct {
	ID           string          `json:"id"`
	VMID         string          `json:"vm_id"`
	VolumeID     string          `json:"volume_id"`
	Class        string          `json:"class"`
	Status       string          `json:"status"`
	EvidenceHash string          `json:"evidence_hash"`
	Summary      json.RawMessage `json:"summary"`
	Simulated    bool            `json:"simulated"`
	CreatedAt    time.Time       `json:"created_at"`
	ExpiresAt    time.Time       `json:"expires_at"`
}

// ListRequests returns requests with the given status ("" for all), newest first.
func ListRequests(ctx context.Context, db *store.DB, status string) ([]Request, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, vm_id, volume_id, class, status, evidence_hash, summary, simulated, created_at, expires_at
		FROM approval_requests WHERE ? = '' OR status = ? ORDER BY created_at DESC, id`, status, status)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", store.Classify(err))
	}
	defer rows.Close()
	out := []Request{}
	for rows.Next() {
		var r Request
		var summary, created, expires string
		var sim int
		if err := rows.Scan(&r.ID, &r.VMID, &r.VolumeID, &r.Class, &r.Status, &r.EvidenceHash, &summary, &sim, &created, &expires); err != nil {
			return nil, err
		}
		r.Summary = json.RawMessage(summary)
		r.Simulated = sim != 0
		r.CreatedAt, _ = store.ParseTime(created)
		r.ExpiresAt, _ = store.ParseTime(expires)
		out = append(out, r)
	}
	return out, rows.Err()
}
