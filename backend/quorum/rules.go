package quorum

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/release"
	"keyholder/backend/store"
)

// settingRules is the settings key of the rules.
const settingRules = store.SettingQuorumRules

// DefaultApprovals is M for a kind the rules do not name.
const DefaultApprovals = 2

// DefaultTTL is how long an action waits for its approvals, and a secret
// result for its requester, when the rules do not say.
const DefaultTTL = 24 * time.Hour

// Rules configure the two-person rule.
type Rules struct {
	// Approvals maps a kind to the number of distinct admins (the requester
	// included) that must approve it; a missing kind needs
	// DefaultApprovals. 1 lets one admin act alone. The number applied is
	// never more than the number of admins.
	Approvals map[Kind]int `json:"approvals,omitempty"`
	// TTL is how long an action waits; zero means DefaultTTL.
	TTL release.Duration `json:"ttl,omitempty"`
}

// Validate refuses unknown kinds and numbers outside 1..16.
func (r Rules) Validate() error {
	for k, n := range r.Approvals {
		if !k.valid() {
			return fmt.Errorf("%w: unknown kind %q", ErrInvalid, k)
		}
		if n < 1 || n > 16 {
			return fmt.Errorf("%w: %s needs 1 to 16 approvals, not %d", ErrInvalid, k, n)
		}
	}
	if r.TTL < 0 || time.Duration(r.TTL) > 30*24*time.Hour || (r.TTL > 0 && time.Duration(r.TTL) < time.Minute) {
		return fmt.Errorf("%w: ttl %s out of range (1m to 30 days)", ErrInvalid, time.Duration(r.TTL))
	}
	return nil
}

// configured is M as configured for k, before the cap by the admin count.
func (r Rules) configured(k Kind) int {
	if n, ok := r.Approvals[k]; ok && n >= 1 {
		return n
	}
	return DefaultApprovals
}

// Needed is M for kind k on a console with admins admins: the configured
// number, at most admins, at least 1.
func (r Rules) Needed(k Kind, admins int) int {
	n := r.configured(k)
	if n > admins {
		n = admins
	}
	if n < 1 {
		n = 1
	}
	return n
}

func (r Rules) ttl() time.Duration {
	if r.TTL <= 0 {
		return DefaultTTL
	}
	return time.Duration(r.TTL)
}

// Weakens reports whether next lets fewer admins do something than r, or
// lets actions wait longer.
func (r Rules) Weakens(next Rules) bool {
	for _, k := range Kinds {
		if next.configured(k) < r.configured(k) {
			return true
		}
	}
	return next.ttl() > r.ttl()
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func loadRules(ctx context.Context, q rowQuerier) (Rules, error) {
	var v string
	err := q.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, settingRules).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return Rules{}, nil
	}
	if err != nil {
		return Rules{}, fmt.Errorf("read quorum rules: %w", store.Classify(err))
	}
	var r Rules
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return Rules{}, fmt.Errorf("quorum rules setting: %w", err)
	}
	return r, nil
}

// Rules returns the stored rules.
func (s *Service) Rules(ctx context.Context) (Rules, error) { return loadRules(ctx, s.db) }

// Status is what the dashboard shows about the two-person rule.
type Status struct {
	Admins int `json:"admins"`
	// Needed is M per kind as applied now.
	Needed map[Kind]int `json:"needed"`
	// OnePersonCanDoEverything is true when every kind needs one admin
	// only: a single admin, or rules set to 1.
	OnePersonCanDoEverything bool  `json:"one_person_can_do_everything"`
	Rules                    Rules `json:"rules"`
}

// Status returns how many admins there are and what each kind needs.
func (s *Service) Status(ctx context.Context) (Status, error) { return StatusOf(ctx, s.db) }

// StatusOf is Status for a database (no service needed).
func StatusOf(ctx context.Context, db *store.DB) (Status, error) {
	var st Status
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		st.Admins, err = custody.CountAdmins(ctx, tx)
		if err != nil {
			return err
		}
		st.Rules, err = loadRules(ctx, tx)
		return err
	})
	if err != nil {
		return Status{}, err
	}
	st.Needed = map[Kind]int{}
	st.OnePersonCanDoEverything = true
	for _, k := range Kinds {
		n := st.Rules.Needed(k, st.Admins)
		st.Needed[k] = n
		if n > 1 {
			st.OnePersonCanDoEverything = false
		}
	}
	return st, nil
}

// OnePersonCanDoEverything reports whether one admin alone can carry out
// every action under the rule (the dashboard warns about it).
func OnePersonCanDoEverything(ctx context.Context, db *store.DB) (bool, error) {
	st, err := StatusOf(ctx, db)
	return st.OnePersonCanDoEverything, err
}
