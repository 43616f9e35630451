package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Keys of the settings table, every one the console reads or writes. Each
// value is JSON.
const (
	// SettingReleaseURL is the guests' release API, https://host:port/path
	// (a JSON string). The release listener publishes a default; image
	// preparation writes it into each new volume's LUKS2 token.
	SettingReleaseURL = "release.url"
	// SettingSPKIPin is the base64 SHA-256 of the release listener key's
	// SPKI (a JSON string), published with the URL.
	SettingSPKIPin = "release.spki_sha256"
	// SettingReleasePolicy is the default release policy (a JSON object).
	SettingReleasePolicy = "release.policy"
	// SettingQuorumRules are the two-person rules (a JSON object).
	SettingQuorumRules = "quorum.rules"
	// SettingImageFolders are the folders the console may read images from
	// and write them to (a JSON list of paths).
	SettingImageFolders = "console.image_folders"
)

// RowQuerier is a *DB, *sql.DB or *sql.Tx: what settings are read through.
type RowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SettingString reads a setting that holds a JSON string; an absent setting
// is "". A failed read or a value that is not a JSON string is an error.
func SettingString(ctx context.Context, q RowQuerier, key string) (string, error) {
	var raw string
	err := q.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, Classify(err))
	}
	var s string
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return "", fmt.Errorf("setting %s is not a JSON string: %w", key, err)
	}
	return s, nil
}
