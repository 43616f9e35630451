package release

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/store"
)

// settingPolicy is the settings key of the console-wide default policy.
const settingPolicy = store.SettingReleasePolicy

// PolicyFor returns the effective policy for imageID ("" for the console
// default alone).
func (s *Service) PolicyFor(ctx context.Context, imageID string) (Policy, error) {
	p, _, err := loadPolicy(ctx, s.db, imageID)
	return p, err
}

// LoadPolicy returns the effective policy for imageID from db.
func LoadPolicy(ctx context.Context, db *store.DB, imageID string) (Policy, error) {
	p, _, err := loadPolicy(ctx, db, imageID)
	return p, err
}

// policyAt is PolicyFor for a request that read the configuration version
// as n with its volume: the policy parsed at version n is reused (n == 0
// reads afresh). The Policy returned is shared: callers must not modify
// its maps.
func (s *Service) policyAt(ctx context.Context, imageID string, n int64) (Policy, error) {
	if p, ok := s.policies.Get(imageID, n); ok {
		return p, nil
	}
	p, read, err := loadPolicy(ctx, s.db, imageID)
	if err != nil {
		return p, err
	}
	s.policies.Put(imageID, read, p)
	return p, nil
}

// loadPolicy returns the effective policy and the configuration version it
// was read at (one statement, one snapshot).
func loadPolicy(ctx context.Context, q querier, imageID string) (Policy, int64, error) {
	p := DefaultPolicy()
	var def, img sql.NullString
	var n int64
	err := q.QueryRowContext(ctx, `SELECT (SELECT value FROM settings WHERE key = ?), (SELECT policy FROM release_policies WHERE image_id = ?), `+store.ConfigVersionSQL,
		settingPolicy, imageID).Scan(&def, &img, &n)
	if err != nil {
		return p, 0, fmt.Errorf("read release policy: %w", store.Classify(err))
	}
	if def.Valid {
		var d Policy
		if err := json.Unmarshal([]byte(def.String), &d); err != nil {
			return p, 0, fmt.Errorf("release policy setting: %w", err)
		}
		p = p.Override(&d)
	}
	if img.Valid && imageID != "" {
		var ip Policy
		if err := json.Unmarshal([]byte(img.String), &ip); err != nil {
			return p, 0, fmt.Errorf("policy of image %s: %w", imageID, err)
		}
		p = p.Override(&ip)
	}
	return p, n, nil
}

// SetPolicy stores the console default (imageID "") or an image's override
// (nil removes it) in log's database, audited in log in the same
// transaction.
func SetPolicy(ctx context.Context, log *audit.Log, actor, imageID string, p *Policy) error {
	if p != nil {
		if err := p.Validate(); err != nil {
			return err
		}
	}
	db := log.DB()
	now := db.Now()
	return db.Tx(ctx, func(tx *sql.Tx) error { return SetPolicyTx(ctx, log, tx, actor, imageID, p, now) })
}

// SetPolicyTx is SetPolicy in the caller's transaction.
func SetPolicyTx(ctx context.Context, log *audit.Log, tx *sql.Tx, actor, imageID string, p *Policy, now time.Time) error {
	var b []byte
	if p != nil {
		if err := p.Validate(); err != nil {
			return err
		}
		b, _ = json.Marshal(p)
	}
	var err error
	switch {
	case imageID == "" && p != nil:
		_, err = tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, settingPolicy, string(b), store.Time(now))
	case imageID == "":
		_, err = tx.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, settingPolicy)
	case p != nil:
		_, err = tx.ExecContext(ctx, `INSERT INTO release_policies(image_id, policy, updated_at, updated_by) VALUES (?, ?, ?, ?)
			ON CONFLICT(image_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			imageID, string(b), store.Time(now), actor)
	default:
		_, err = tx.ExecContext(ctx, `DELETE FROM release_policies WHERE image_id = ?`, imageID)
	}
	if err != nil {
		return fmt.Errorf("store release policy: %w", store.Classify(err))
	}
	subject := "console"
	if imageID != "" {
		subject = imageID
	}
	_, err = log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "policy.set", Subject: subject, Decision: "changed", Reason: string(b)})
	return err
}

// EffectivePolicyAfter returns the policy imageID would have if its stored
// policy (the console default for "") became p (nil: removed), as q sees
// the rest of the configuration.
func EffectivePolicyAfter(ctx context.Context, q querier, imageID string, p *Policy) (Policy, error) {
	base := DefaultPolicy()
	if imageID != "" {
		var err error
		if base, _, err = loadPolicy(ctx, q, ""); err != nil {
			return Policy{}, err
		}
	}
	return base.Override(p), nil
}

// EffectivePolicy returns imageID's effective policy as q sees it (a
// *store.DB or a *sql.Tx).
func EffectivePolicy(ctx context.Context, q querier, imageID string) (Policy, error) {
	p, _, err := loadPolicy(ctx, q, imageID)
	return p, err
}
