package quorum

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/store"
)

// proposal is an action before it is stored.
type proposal struct {
	kind    Kind
	params  any // encoded canonically and hashed
	shown   any // what officers see; never a secret
	summary string
	// alone: this instance loosens nothing (e.g. an approver made a
	// viewer), so one admin carries it out.
	alone bool
}

// execError is a failure to carry out an approved action: the vote's
// transaction rolls back and the action is marked failed.
type execError struct {
	id  string
	err error
}

func (e *execError) Error() string { return e.err.Error() }
func (e *execError) Unwrap() error { return e.err }

const actionColumns = `id, kind, params_hash, shown, summary, requested_by, status, approvals_needed, reason, created_at, expires_at`

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// List returns the actions with status ("" for all), newest first, each
// with its votes.
func List(ctx context.Context, db *store.DB, status string) ([]Action, error) {
	return list(ctx, db, `? = '' OR status = ?`, status, status)
}

// Get returns one action with its votes.
func Get(ctx context.Context, db *store.DB, id string) (Action, error) { return get(ctx, db, id) }

func get(ctx context.Context, q querier, id string) (Action, error) {
	as, err := list(ctx, q, `id = ?`, id)
	if err != nil {
		return Action{}, err
	}
	if len(as) == 0 {
		return Action{}, fmt.Errorf("admin action %s: %w", id, store.ErrNotFound)
	}
	return as[0], nil
}

func list(ctx context.Context, q querier, where string, args ...any) ([]Action, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+actionColumns+` FROM admin_actions WHERE `+where+` ORDER BY created_at DESC, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list admin actions: %w", store.Classify(err))
	}
	out := []Action{}
	idx := map[string]int{}
	for rows.Next() {
		var a Action
		var shown, created, expires string
		if err := rows.Scan(&a.ID, &a.Kind, &a.Hash, &shown, &a.Summary, &a.RequestedBy, &a.Status, &a.ApprovalsNeeded, &a.Reason, &created, &expires); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list admin actions: %w", err)
		}
		a.Shown = json.RawMessage(shown)
		a.CreatedAt, _ = store.ParseTime(created)
		a.ExpiresAt, _ = store.ParseTime(expires)
		a.Secret = a.Kind.Secret()
		a.Votes = []Vote{}
		idx[a.ID] = len(out)
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	vrows, err := q.QueryContext(ctx, `SELECT action_id, officer, params_hash, at FROM admin_action_votes
		WHERE action_id IN (SELECT id FROM admin_actions WHERE `+where+`) ORDER BY at, officer`, args...)
	if err != nil {
		return nil, fmt.Errorf("list votes: %w", store.Classify(err))
	}
	defer vrows.Close()
	for vrows.Next() {
		var id, at string
		var v Vote
		if err := vrows.Scan(&id, &v.Officer, &v.Hash, &at); err != nil {
			return nil, err
		}
		v.At, _ = store.ParseTime(at)
		if i, ok := idx[id]; ok {
			out[i].Votes = append(out[i].Votes, v)
		}
	}
	return out, vrows.Err()
}

// storedParams reads an action's parameters and checks them against its
// hash, so that parameters altered in the database are never carried out.
func storedParams(ctx context.Context, q querier, a Action) ([]byte, error) {
	var params string
	if err := q.QueryRowContext(ctx, `SELECT params FROM admin_actions WHERE id = ?`, a.ID).Scan(&params); err != nil {
		return nil, fmt.Errorf("read action parameters: %w", store.Classify(err))
	}
	if !sameHash(Hash(a.Kind, []byte(params)), a.Hash) {
		return nil, fmt.Errorf("admin action %s: %w", a.ID, ErrChanged)
	}
	return []byte(params), nil
}

func (s *Service) emit(a Action) { s.notify(Event{ActionID: a.ID, Kind: a.Kind, Status: a.Status}) }

// submit stores a new action with the requester's vote, or adds the
// requester's vote to an open action with the very same parameters, and
// carries it out when that makes enough votes.
func (s *Service) submit(ctx context.Context, by Actor, p proposal) (Action, error) {
	body, err := json.Marshal(p.params)
	if err != nil {
		return Action{}, fmt.Errorf("encode action: %w", err)
	}
	shown, err := json.Marshal(p.shown)
	if err != nil {
		return Action{}, fmt.Errorf("encode action: %w", err)
	}
	hash := Hash(p.kind, body)
	now := s.now()
	var id string
	var expired bool
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.admin(ctx, tx, by, now); err != nil {
			return err
		}
		rules, err := loadRules(ctx, tx)
		if err != nil {
			return err
		}
		admins, err := custody.CountAdmins(ctx, tx)
		if err != nil {
			return err
		}
		if !p.alone {
			err := tx.QueryRowContext(ctx, `SELECT id FROM admin_actions WHERE params_hash = ? AND kind = ? AND status = 'pending' AND expires_at > ?
				ORDER BY created_at LIMIT 1`, hash, string(p.kind), store.Time(now)).Scan(&id)
			switch {
			case err == nil:
				a, err := get(ctx, tx, id)
				if err != nil {
					return err
				}
				expired, err = s.voteTx(ctx, tx, by, a, hash, now)
				return err
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("find open action: %w", store.Classify(err))
			}
		}
		needed := rules.Needed(p.kind, admins)
		if p.alone {
			needed = 1
		}
		id = store.NewID("act")
		if _, err := tx.ExecContext(ctx, `INSERT INTO admin_actions(id, kind, params, params_hash, shown, summary, requested_by, status, approvals_needed, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`, id, string(p.kind), string(body), hash, string(shown), p.summary, by.Officer.Name,
			needed, store.Time(now), store.Time(now.Add(rules.ttl()))); err != nil {
			return fmt.Errorf("store admin action: %w", store.Classify(err))
		}
		if _, err := s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(by.Officer.Name), Action: "admin.request", Subject: id,
			Decision: "pending", Reason: fmt.Sprintf("%s: %s (%d of %d admins needed)", p.kind, p.summary, needed, admins), EvidenceHash: hash}); err != nil {
			return err
		}
		a, err := get(ctx, tx, id)
		if err != nil {
			return err
		}
		_, err = s.voteTx(ctx, tx, by, a, hash, now)
		return err
	})
	return s.finish(ctx, id, expired, err)
}

// finish marks an action failed when carrying it out failed, and returns
// the action as it now stands.
func (s *Service) finish(ctx context.Context, id string, expired bool, err error) (Action, error) {
	var ee *execError
	if errors.As(err, &ee) {
		s.fail(ctx, ee.id, ee.err)
		if a, gerr := Get(ctx, s.db, ee.id); gerr == nil {
			s.emit(a)
		}
		return Action{}, fmt.Errorf("carry out admin action %s: %w", ee.id, ee.err)
	}
	if err != nil {
		return Action{}, err
	}
	a, err := Get(ctx, s.db, id)
	if err != nil {
		return Action{}, err
	}
	s.emit(a)
	if expired {
		return a, fmt.Errorf("admin action %s: %w", id, ErrExpired)
	}
	return a, nil
}

// fail records that an approved action could not be carried out. An
// action that was never stored (its request rolled back) is left alone.
func (s *Service) fail(ctx context.Context, id string, cause error) {
	now := s.now()
	msg := "could not be carried out: " + cause.Error()
	s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE admin_actions SET status = 'failed', reason = ?, decided_at = ? WHERE id = ? AND status IN ('pending', 'approved', 'delivered')`,
			msg, store.Time(now), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		_, err = s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: "console", Action: "admin.execute", Subject: id, Decision: "failed", Reason: msg})
		return err
	})
}

// voteTx records by's vote on a (bound to hash) and completes the action
// when enough admins voted. expired reports an action found past its
// expiry (expired now; the caller commits that and reports ErrExpired).
func (s *Service) voteTx(ctx context.Context, tx *sql.Tx, by Actor, a Action, hash string, now time.Time) (expired bool, err error) {
	if a.Status != StatusPending {
		return false, fmt.Errorf("approve %s (%s): %w", a.ID, a.Status, ErrNotPending)
	}
	if !now.Before(a.ExpiresAt) {
		return true, s.expireTx(ctx, tx, a, now)
	}
	if !sameHash(hash, a.Hash) {
		return false, fmt.Errorf("approve %s: %w", a.ID, ErrChanged)
	}
	params, err := storedParams(ctx, tx, a)
	if err != nil {
		return false, err
	}
	for _, v := range a.Votes {
		if v.Officer == by.Officer.Name {
			return false, fmt.Errorf("approve %s: %w", a.ID, ErrAlreadyVoted)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO admin_action_votes(action_id, officer, params_hash, at) VALUES (?, ?, ?, ?)`,
		a.ID, by.Officer.Name, hash, store.Time(now)); err != nil {
		return false, fmt.Errorf("record vote: %w", store.Classify(err))
	}
	a.Votes = append(a.Votes, Vote{Officer: by.Officer.Name, Hash: hash, At: now})
	// Only votes of officers who are admins now, bound to this hash, count.
	var voters []string
	for _, v := range a.Votes {
		o, err := custody.LookupOfficer(ctx, tx, v.Officer)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		if err == nil && o.Role == custody.RoleAdmin && sameHash(v.Hash, a.Hash) {
			voters = append(voters, v.Officer)
		}
	}
	admins, err := custody.CountAdmins(ctx, tx)
	if err != nil {
		return false, err
	}
	needed := min(a.ApprovalsNeeded, max(admins, 1))
	decision := fmt.Sprintf("approval %d of %d", len(voters), needed)
	if _, err := s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(by.Officer.Name), Action: "admin.approve", Subject: a.ID,
		Decision: decision, Reason: fmt.Sprintf("%s: %s", a.Kind, a.Summary), EvidenceHash: a.Hash}); err != nil {
		return false, err
	}
	if len(voters) < needed {
		return false, nil
	}
	actor := officerActor(strings.Join(voters, "+"))
	if a.Kind.Secret() {
		rules, err := loadRules(ctx, tx)
		if err != nil {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE admin_actions SET status = 'approved', decided_at = ?, expires_at = ? WHERE id = ?`,
			store.Time(now), store.Time(now.Add(rules.ttl())), a.ID); err != nil {
			return false, fmt.Errorf("approve admin action: %w", store.Classify(err))
		}
		_, err = s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "admin.approved", Subject: a.ID, Decision: "approved",
			Reason: fmt.Sprintf("%s: %s; for %s to collect once", a.Kind, a.Summary, a.RequestedBy), EvidenceHash: a.Hash})
		return false, err
	}
	if err := s.execute(ctx, tx, a.Kind, params, actor, now); err != nil {
		return false, &execError{id: a.ID, err: err}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE admin_actions SET status = 'done', decided_at = ? WHERE id = ?`, store.Time(now), a.ID); err != nil {
		return false, fmt.Errorf("complete admin action: %w", store.Classify(err))
	}
	_, err = s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "admin.execute", Subject: a.ID, Decision: "done",
		Reason: fmt.Sprintf("%s: %s (requested by %s)", a.Kind, a.Summary, a.RequestedBy), EvidenceHash: a.Hash})
	return false, err
}

// Approve records by's approval of action id. hash must be the action's
// Hash as by saw it: an approval binds to those exact parameters. The vote
// that makes M distinct admins carries the action out in the same
// transaction (or, for a secret result, lets its requester collect it).
// The same officer cannot approve twice.
func (s *Service) Approve(ctx context.Context, by Actor, id, hash string) (Action, error) {
	now := s.now()
	var expired bool
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.admin(ctx, tx, by, now); err != nil {
			return err
		}
		a, err := get(ctx, tx, id)
		if err != nil {
			return err
		}
		expired, err = s.voteTx(ctx, tx, by, a, hash, now)
		return err
	})
	return s.finish(ctx, id, expired, err)
}

// Deny refuses action id for good (a pending one, or a secret result not
// yet collected). The requester may withdraw their own action this way.
func (s *Service) Deny(ctx context.Context, by Actor, id, note string) (Action, error) {
	now := s.now()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.admin(ctx, tx, by, now); err != nil {
			return err
		}
		a, err := get(ctx, tx, id)
		if err != nil {
			return err
		}
		if a.Status != StatusPending && a.Status != StatusApproved {
			return fmt.Errorf("deny %s (%s): %w", id, a.Status, ErrNotPending)
		}
		reason := "denied by " + by.Officer.Name
		if note != "" {
			reason += ": " + note
		}
		if _, err := tx.ExecContext(ctx, `UPDATE admin_actions SET status = 'denied', reason = ?, decided_at = ? WHERE id = ?`, reason, store.Time(now), id); err != nil {
			return fmt.Errorf("deny admin action: %w", store.Classify(err))
		}
		_, err = s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(by.Officer.Name), Action: "admin.deny", Subject: id, Decision: "denied",
			Reason: fmt.Sprintf("%s: %s: %s", a.Kind, a.Summary, note), EvidenceHash: a.Hash})
		return err
	})
	return s.finish(ctx, id, false, err)
}

func (s *Service) expireTx(ctx context.Context, tx *sql.Tx, a Action, now time.Time) error {
	reason := "no decision before " + a.ExpiresAt.UTC().Format(time.RFC3339)
	if a.Status == StatusApproved {
		reason = "approved, but " + a.RequestedBy + " did not collect the result before " + a.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE admin_actions SET status = 'expired', reason = ?, decided_at = ? WHERE id = ?`, reason, store.Time(now), a.ID); err != nil {
		return fmt.Errorf("expire admin action: %w", store.Classify(err))
	}
	_, err := s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: "console", Action: "admin.expire", Subject: a.ID, Decision: "expired",
		Reason: fmt.Sprintf("%s: %s: %s", a.Kind, a.Summary, reason), EvidenceHash: a.Hash})
	return err
}

// ExpireDue expires every pending or approved action past its expiry and
// returns how many.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	now := s.now()
	n := 0
	var changed []Action
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		as, err := list(ctx, tx, `status IN ('pending', 'approved') AND expires_at <= ?`, store.Time(now))
		if err != nil {
			return err
		}
		for _, a := range as {
			if err := s.expireTx(ctx, tx, a, now); err != nil {
				return err
			}
			a.Status = StatusExpired
			changed = append(changed, a)
		}
		n = len(as)
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, a := range changed {
		s.emit(a)
	}
	return n, nil
}

// claimTx checks that by may collect secret action id of kind now, and
// marks it delivered: whatever happens next, it is never delivered again.
func (s *Service) claimTx(ctx context.Context, tx *sql.Tx, by Actor, id string, kind Kind, now time.Time) (Action, []byte, bool, error) {
	if err := s.admin(ctx, tx, by, now); err != nil {
		return Action{}, nil, false, err
	}
	a, err := get(ctx, tx, id)
	if err != nil {
		return Action{}, nil, false, err
	}
	if a.Kind != kind {
		return Action{}, nil, false, fmt.Errorf("collect %s (%s): %w", id, a.Kind, ErrNotCollectable)
	}
	if a.Status == StatusApproved && !now.Before(a.ExpiresAt) {
		return a, nil, true, s.expireTx(ctx, tx, a, now)
	}
	if a.Status != StatusApproved {
		return Action{}, nil, false, fmt.Errorf("collect %s (%s): %w", id, a.Status, ErrNotCollectable)
	}
	if a.RequestedBy != by.Officer.Name {
		return Action{}, nil, false, fmt.Errorf("collect %s: %w (%s asked)", id, ErrNotRequester, a.RequestedBy)
	}
	params, err := storedParams(ctx, tx, a)
	if err != nil {
		return Action{}, nil, false, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE admin_actions SET status = 'delivered', decided_at = ? WHERE id = ? AND status = 'approved'`, store.Time(now), id)
	if err != nil {
		return Action{}, nil, false, fmt.Errorf("deliver admin action: %w", store.Classify(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Action{}, nil, false, fmt.Errorf("collect %s: %w", id, ErrNotCollectable)
	}
	_, err = s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(by.Officer.Name), Action: "admin.deliver", Subject: id, Decision: "delivered",
		Reason: fmt.Sprintf("%s: %s", a.Kind, a.Summary), EvidenceHash: a.Hash})
	return a, params, false, err
}

// CollectShares gives the officer who asked for recovery shares (action id,
// approved) the shares, once. They are made now, from the unlocked master
// key, and never stored; the delivery and the split are audited together.
func (s *Service) CollectShares(ctx context.Context, by Actor, id string) ([]string, error) {
	now := s.now()
	var shares []string
	var expired bool
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, params, exp, err := s.claimTx(ctx, tx, by, id, KindRecoveryShares, now)
		if err != nil || exp {
			expired = exp
			return err
		}
		var p sharesParams
		if err := json.Unmarshal(params, &p); err != nil {
			return fmt.Errorf("admin action %s parameters: %w", id, err)
		}
		shares, err = s.cust.SplitRecoveryTx(ctx, tx, officerActor(by.Officer.Name), p.M, p.N)
		return err
	})
	if a, gerr := Get(ctx, s.db, id); gerr == nil && (err == nil || expired) {
		s.emit(a)
	}
	if err != nil {
		return nil, err
	}
	if expired {
		return nil, fmt.Errorf("collect %s: %w", id, ErrExpired)
	}
	return shares, nil
}

// CollectBackup writes the encrypted backup of approved action id to w for
// the officer who asked, once. The action is marked delivered before the
// backup is written; a failure while writing marks it failed (ask again).
func (s *Service) CollectBackup(ctx context.Context, by Actor, id string, w io.Writer) (custody.BackupInfo, error) {
	now := s.now()
	var p backupParams
	var expired bool
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if !s.cust.Unlocked() {
			return custody.ErrLocked
		}
		_, params, exp, err := s.claimTx(ctx, tx, by, id, KindBackupExport, now)
		if err != nil || exp {
			expired = exp
			return err
		}
		return json.Unmarshal(params, &p)
	})
	if err != nil {
		return custody.BackupInfo{}, err
	}
	if expired {
		if a, gerr := Get(ctx, s.db, id); gerr == nil {
			s.emit(a)
		}
		return custody.BackupInfo{}, fmt.Errorf("collect %s: %w", id, ErrExpired)
	}
	info, err := s.cust.WriteBackup(ctx, officerActor(by.Officer.Name), w, p.Files...)
	if err != nil {
		s.fail(ctx, id, err)
	}
	if a, gerr := Get(ctx, s.db, id); gerr == nil {
		s.emit(a)
	}
	return info, err
}
