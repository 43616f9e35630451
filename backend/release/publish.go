package release

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"keyholder/backend/release/wire"
	"keyholder/backend/store"
)

// Publish records the listener's pin, and its URL unless an officer set
// one already (the console cannot know the name guests reach it by; the
// default is only a guess from the listen address and the host name).
func Publish(ctx context.Context, db *store.DB, defaultURL, pin string) error {
	raw, err := wire.ParsePin(pin)
	if err != nil {
		return err
	}
	b64, _ := json.Marshal(base64.StdEncoding.EncodeToString(raw))
	u, _ := json.Marshal(defaultURL)
	now := store.Time(db.Now())
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, store.SettingSPKIPin, string(b64), now); err != nil {
			return fmt.Errorf("publish release pin: %w", store.Classify(err))
		}
		if defaultURL == "" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING`,
			store.SettingReleaseURL, string(u), now); err != nil {
			return fmt.Errorf("publish release URL: %w", store.Classify(err))
		}
		return nil
	})
}
