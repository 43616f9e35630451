package release

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/fleet"
	"keyholder/backend/release/wire"
	"keyholder/backend/store"
)

// RequestStatus is where a release request stands.
type RequestStatus string

// Request statuses.
const (
	StatusPending   RequestStatus = "pending"   // waiting for approvals
	StatusApproved  RequestStatus = "approved"  // approved; the guest has not collected yet
	StatusDenied    RequestStatus = "denied"    // final
	StatusExpired   RequestStatus = "expired"   // final
	StatusCompleted RequestStatus = "completed" // the guest received its secret
)

// Request is a release request that needed (or needs) an officer.
type Request struct {
	ID              string          `json:"id"`
	VMID            string          `json:"vm_id"`
	VolumeID        string          `json:"volume_id"`
	Purpose         string          `json:"purpose"`
	Generation      int             `json:"generation"`
	Class           Class           `json:"class"`
	Signals         []Class         `json:"signals"`
	Status          RequestStatus   `json:"status"`
	ApprovalsNeeded int             `json:"approvals_needed"`
	Approvals       []Approval      `json:"approvals"`
	EvidenceHash    string          `json:"evidence_hash"`
	Summary         json.RawMessage `json:"summary"`
	Simulated       bool            `json:"simulated"`
	Reason          string          `json:"reason"`
	// FirstBootClaim: the request claims the first boot of a volume whose
	// image has no reference values yet; approving it pins its measurement.
	FirstBootClaim bool `json:"first_boot_claim"`
	// Competing lists the other open requests that claim the first boot of
	// the same volume: at most one of them is the real guest, and an
	// officer must pick (approving one denies the others).
	Competing []string  `json:"competing,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Approval is one officer's approval of a request.
type Approval struct {
	Officer      string    `json:"officer"`
	Note         string    `json:"note"`
	At           time.Time `json:"at"`
	EvidenceHash string    `json:"evidence_hash"`
}

// Approver is the officer deciding, with when they last authenticated (the
// UI session's or the command line's passphrase check).
type Approver struct {
	Name            string
	AuthenticatedAt time.Time
}

const requestColumns = `id, vm_id, volume_id, purpose, generation, class, signals, status, approvals_needed, evidence_hash, summary, simulated, reason, created_at, expires_at, first_boot_claim`

type scanner interface{ Scan(...any) error }

func scanRequest(sc scanner) (Request, error) {
	var r Request
	var signals, summary, created, expires string
	var sim, claim int
	if err := sc.Scan(&r.ID, &r.VMID, &r.VolumeID, &r.Purpose, &r.Generation, &r.Class, &signals, &r.Status, &r.ApprovalsNeeded,
		&r.EvidenceHash, &summary, &sim, &r.Reason, &created, &expires, &claim); err != nil {
		return r, err
	}
	r.FirstBootClaim = claim != 0
	json.Unmarshal([]byte(signals), &r.Signals)
	r.Summary = json.RawMessage(summary)
	r.Simulated = sim != 0
	r.CreatedAt, _ = store.ParseTime(created)
	r.ExpiresAt, _ = store.ParseTime(expires)
	r.Approvals = []Approval{}
	return r, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ListRequests returns requests with the given status ("" for all), newest
// first, each with its approvals.
func ListRequests(ctx context.Context, db *store.DB, status RequestStatus) ([]Request, error) {
	return listRequests(ctx, db, `? = '' OR status = ?`, status, status)
}

func listRequests(ctx context.Context, q querier, where string, args ...any) ([]Request, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+requestColumns+` FROM approval_requests WHERE `+where+` ORDER BY created_at DESC, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", store.Classify(err))
	}
	out := []Request{}
	idx := map[string]int{}
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list requests: %w", err)
		}
		idx[r.ID] = len(out)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	if err := fillCompeting(ctx, q, out); err != nil {
		return nil, err
	}
	arows, err := q.QueryContext(ctx, `SELECT request_id, officer, note, at, evidence_hash FROM approvals
		WHERE request_id IN (SELECT id FROM approval_requests WHERE `+where+`) ORDER BY at`, args...)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", store.Classify(err))
	}
	defer arows.Close()
	for arows.Next() {
		var id, at string
		var a Approval
		if err := arows.Scan(&id, &a.Officer, &a.Note, &at, &a.EvidenceHash); err != nil {
			return nil, err
		}
		a.At, _ = store.ParseTime(at)
		if i, ok := idx[id]; ok {
			out[i].Approvals = append(out[i].Approvals, a)
		}
	}
	return out, arows.Err()
}

// openClaimsSQL selects the open requests that claim the first boot of a
// volume (the first argument).
const openClaimsSQL = `SELECT id FROM approval_requests WHERE first_boot_claim = 1 AND volume_id = ? AND status IN ('pending', 'approved') ORDER BY created_at, id`

// fillCompeting sets Competing on the open first-boot claims in rs.
func fillCompeting(ctx context.Context, q querier, rs []Request) error {
	byVolume := map[string][]string{}
	for i := range rs {
		r := &rs[i]
		if !r.FirstBootClaim || (r.Status != StatusPending && r.Status != StatusApproved) {
			continue
		}
		ids, ok := byVolume[r.VolumeID]
		if !ok {
			var err error
			if ids, err = queryIDs(ctx, q, openClaimsSQL, r.VolumeID); err != nil {
				return fmt.Errorf("list competing claims: %w", err)
			}
			byVolume[r.VolumeID] = ids
		}
		for _, id := range ids {
			if id != r.ID {
				r.Competing = append(r.Competing, id)
			}
		}
	}
	return nil
}

func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, store.Classify(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// GetRequest returns one request with its approvals.
func GetRequest(ctx context.Context, db *store.DB, id string) (Request, error) {
	return getRequest(ctx, db, id)
}

func getRequest(ctx context.Context, q querier, id string) (Request, error) {
	rs, err := listRequests(ctx, q, `id = ?`, id)
	if err != nil {
		return Request{}, err
	}
	if len(rs) == 0 {
		return Request{}, fmt.Errorf("request %s: %w", id, store.ErrNotFound)
	}
	return rs[0], nil
}

func officerActor(name string) string { return "officer:" + name }

// Approve records by's approval of request id, bound to the evidence hash
// the request carries. When the request has all the approvals its class
// needs it becomes approved, and the guest may collect its secret until the
// approval expires. The same officer cannot approve twice.
func (s *Service) Approve(ctx context.Context, id string, by Approver, note string) (Request, error) {
	now := s.now()
	if strings.TrimSpace(by.Name) == "" {
		return Request{}, ErrNoOfficer
	}
	if by.AuthenticatedAt.IsZero() || now.Sub(by.AuthenticatedAt) > s.authAge || by.AuthenticatedAt.After(now.Add(time.Minute)) {
		return Request{}, ErrReauthenticate
	}
	var expired bool
	var losers []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		losers = nil
		r, err := getRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		if r.Status != StatusPending {
			return fmt.Errorf("approve %s (%s): %w", id, r.Status, ErrNotPending)
		}
		if !now.Before(r.ExpiresAt) {
			expired = true
			return s.expireTx(ctx, tx, r, now)
		}
		for _, a := range r.Approvals {
			if a.Officer == by.Name {
				return fmt.Errorf("approve %s: %w", id, ErrAlreadyApproved)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO approvals(request_id, officer, evidence_hash, note, at) VALUES (?, ?, ?, ?, ?)`,
			id, by.Name, r.EvidenceHash, note, store.Time(now)); err != nil {
			return fmt.Errorf("record approval: %w", store.Classify(err))
		}
		have := len(r.Approvals) + 1
		decision := fmt.Sprintf("approval %d of %d", have, r.ApprovalsNeeded)
		if have >= r.ApprovalsNeeded {
			decision = "approved"
			ttl := r.ExpiresAt.Sub(r.CreatedAt)
			if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'approved', decided_at = ?, expires_at = ? WHERE id = ?`,
				store.Time(now), store.Time(now.Add(ttl)), id); err != nil {
				return fmt.Errorf("approve request: %w", store.Classify(err))
			}
		}
		if _, err := fleet.Record(ctx, tx, fleet.Observation{At: now, VMID: r.VMID, Kind: "approval", Result: decision, Class: string(r.Class),
			Message: fmt.Sprintf("%s by %s", decision, by.Name), RequestID: id, Simulated: r.Simulated}); err != nil {
			return err
		}
		if r.FirstBootClaim {
			// Approving one claim of a volume's first boot picks it: the
			// competing claims are denied, each audited.
			if err := s.denyCompetingTx(ctx, tx, r, by.Name, now); err != nil {
				return err
			}
			losers = r.Competing
		}
		_, err = s.audit.Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(by.Name), Action: "release.approve", Subject: id,
			Decision: decision, Reason: fmt.Sprintf("%s of %s (volume %s): %s", r.Class, r.VMID, r.VolumeID, note), EvidenceHash: r.EvidenceHash})
		return err
	})
	if err != nil {
		return Request{}, err
	}
	s.emit(Event{Kind: "request", RequestID: id})
	for _, l := range losers {
		s.emit(Event{Kind: "request", RequestID: l})
	}
	if expired {
		return Request{}, fmt.Errorf("approve %s: %w", id, ErrExpired)
	}
	return GetRequest(ctx, s.db, id)
}

// Deny refuses request id for good. Approvals already given do not matter.
// note is the officer's reason, required (ErrReasonRequired when blank).
func (s *Service) Deny(ctx context.Context, id string, by Approver, note string) (Request, error) {
	now := s.now()
	if strings.TrimSpace(by.Name) == "" {
		return Request{}, ErrNoOfficer
	}
	note = strings.TrimSpace(note)
	if note == "" {
		return Request{}, fmt.Errorf("deny %s: %w", id, ErrReasonRequired)
	}
	var vm string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := getRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		vm = r.VMID
		if r.Status != StatusPending && r.Status != StatusApproved {
			return fmt.Errorf("deny %s (%s): %w", id, r.Status, ErrNotPending)
		}
		reason := "denied by " + by.Name + ": " + note
		if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'denied', reason = ?, decided_at = ? WHERE id = ?`,
			reason, store.Time(now), id); err != nil {
			return fmt.Errorf("deny request: %w", store.Classify(err))
		}
		if err := fleet.SetStatusTx(ctx, tx, r.VMID, fleet.Failing, reason); err != nil {
			return err
		}
		if _, err := fleet.Record(ctx, tx, fleet.Observation{At: now, VMID: r.VMID, Kind: "approval", Result: fleet.ResultDenied, Class: string(r.Class),
			Code: string(wire.CodeDeniedByOfficer), Message: reason, RequestID: id, Simulated: r.Simulated}); err != nil {
			return err
		}
		_, err = s.audit.Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(by.Name), Action: "release.deny", Subject: id,
			Decision: "denied", Reason: fmt.Sprintf("%s of %s (volume %s): %s", r.Class, r.VMID, r.VolumeID, note), EvidenceHash: r.EvidenceHash})
		return err
	})
	if err != nil {
		return Request{}, err
	}
	s.emit(Event{Kind: "request", RequestID: id})
	s.emit(Event{Kind: "fleet", VMID: vm})
	return GetRequest(ctx, s.db, id)
}

// denyCompetingTx denies the other open claims of the first boot of
// picked's volume: an officer picked picked.
func (s *Service) denyCompetingTx(ctx context.Context, tx *sql.Tx, picked Request, officer string, now time.Time) error {
	for _, cid := range picked.Competing {
		c, err := getRequest(ctx, tx, cid)
		if err != nil {
			return err
		}
		if c.Status != StatusPending && c.Status != StatusApproved {
			continue
		}
		reason := fmt.Sprintf("denied by %s: another launch claiming the first boot of volume %s was picked (request %s)", officer, c.VolumeID, picked.ID)
		if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'denied', reason = ?, decided_at = ? WHERE id = ?`,
			reason, store.Time(now), c.ID); err != nil {
			return fmt.Errorf("deny competing claim: %w", store.Classify(err))
		}
		if c.VMID != picked.VMID {
			if err := fleet.SetStatusTx(ctx, tx, c.VMID, fleet.Failing, reason); err != nil {
				return err
			}
		}
		if _, err := s.audit.Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(officer), Action: "release.deny", Subject: c.ID,
			Decision: "denied", Reason: fmt.Sprintf("%s of %s (volume %s): %s", c.Class, c.VMID, c.VolumeID, reason), EvidenceHash: c.EvidenceHash}); err != nil {
			return err
		}
	}
	return nil
}

// policyStillAllows checks an approved request against the current policy:
// every class it showed must still be allowed, and the approvals bound to
// its evidence must still be enough. It returns the refusal, or "" when the
// policy allows the release.
func policyStillAllows(p Policy, r Request, c Claims, bound int) (wire.Code, string) {
	signals := r.Signals
	if len(signals) == 0 {
		signals = []Class{Class(r.Class)}
	}
	needed := 1
	for _, s := range signals {
		n := p.Needs(s)
		if n < 0 {
			return wire.CodeDeniedByPolicy, fmt.Sprintf("the policy was changed after the approval and now denies %s", s)
		}
		needed = max(needed, n)
	}
	if c.Unreferenced {
		needed = max(needed, p.approvers(ClassFirstBoot))
	}
	if bound < needed {
		return wire.CodeDeniedByPolicy, fmt.Sprintf("the policy was changed after the approval and now needs %d approvals for %s; the request has %d",
			needed, joinClasses(signals), bound)
	}
	if c.MigrationAgent && !p.AllowMigrationAgent {
		return wire.CodePolicyMigration, "the policy was changed after the approval and no longer allows a migration agent"
	}
	return "", ""
}

func (s *Service) expireTx(ctx context.Context, tx *sql.Tx, r Request, now time.Time) error {
	reason := "no decision before " + r.ExpiresAt.UTC().Format(time.RFC3339)
	if r.Status == StatusApproved {
		reason = "approved, but the guest did not collect before " + r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'expired', reason = ?, decided_at = ? WHERE id = ?`, reason, store.Time(now), r.ID); err != nil {
		return fmt.Errorf("expire request: %w", store.Classify(err))
	}
	if err := fleet.SetStatusTx(ctx, tx, r.VMID, fleet.Failing, "request expired"); err != nil {
		return err
	}
	_, err := s.audit.Append(ctx, tx, audit.Entry{At: now, Actor: "console", Action: "release.expire", Subject: r.ID,
		Decision: "expired", Reason: fmt.Sprintf("%s of %s: %s", r.Class, r.VMID, reason), EvidenceHash: r.EvidenceHash})
	return err
}

// supersedeTx ends the VM's earlier pending requests for the same volume
// from the same chip when it asks again (it rebooted: the keys those
// requests were sealed to are gone). A request for another of the VM's
// volumes stays: one boot asks for each of its volumes. It never ends an approved request, a request from another
// chip, or a first-boot claim: the VM ID is the guest's own word, and any
// genuine guest can use any VM ID, so a stranger must not be able to end the
// real guest's request. Those wait for an officer or expire. Nor does it
// end anything when the chip is unknown (a VLEK names none): every VLEK
// guest of the provider would be "the same chip". A request already past
// its deadline ran out of time and is left for ExpireDue, which records it
// as undecided.
func (s *Service) supersedeTx(ctx context.Context, tx *sql.Tx, vmID, volumeID, chipID, newID string, now time.Time) error {
	if chipID == "" {
		return nil
	}
	rs, err := listRequests(ctx, tx, `vm_id = ? AND volume_id = ? AND status = 'pending' AND first_boot_claim = 0 AND json_extract(claims, '$.chip_id') = ? AND expires_at > ?`, vmID, volumeID, chipID, store.Time(now))
	if err != nil {
		return err
	}
	for _, r := range rs {
		reason := "superseded by request " + newID + " (the guest asked again from the same chip)"
		if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'expired', reason = ?, decided_at = ? WHERE id = ?`, reason, store.Time(now), r.ID); err != nil {
			return fmt.Errorf("supersede request: %w", store.Classify(err))
		}
		if err := s.appendAudit(ctx, tx, audit.Entry{At: now, Actor: "console", Action: "release.expire", Subject: r.ID,
			Decision: "expired", Reason: fmt.Sprintf("%s of %s: %s", r.Class, r.VMID, reason), EvidenceHash: r.EvidenceHash}); err != nil {
			return err
		}
	}
	return nil
}

// ExpireDue expires every pending or approved request past its expiry and
// returns how many it expired.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	now := s.now()
	rs, err := listRequests(ctx, s.db, `status IN ('pending', 'approved') AND expires_at <= ?`, store.Time(now))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rs {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var st RequestStatus
			if err := tx.QueryRowContext(ctx, `SELECT status FROM approval_requests WHERE id = ?`, r.ID).Scan(&st); err != nil {
				return err
			}
			if st != StatusPending && st != StatusApproved {
				return nil // decided meanwhile
			}
			n++
			return s.expireTx(ctx, tx, r, now)
		})
		if err != nil {
			return n, err
		}
		s.emit(Event{Kind: "request", RequestID: r.ID})
		s.emit(Event{Kind: "fleet", VMID: r.VMID})
	}
	return n, nil
}

// Poll answers a guest that waits for request id: still pending, released
// (once, when approved), or refused.
func (s *Service) Poll(ctx context.Context, id string) (*wire.Release, error) {
	if err := wire.CheckID(id); err != nil {
		return nil, refusal(wire.CodeBadRequest, "request ID: "+err.Error())
	}
	// An unknown ID (junk, or a request long gone) is answered from a read,
	// without a place in the committer's write transaction.
	var one int
	switch err := s.db.QueryRowContext(stmtContext(ctx), `SELECT 1 FROM approval_requests WHERE id = ?`, id).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, refusal(wire.CodeRequestUnknown, "no such request")
	case err != nil:
		return nil, s.internal("poll", fmt.Errorf("read request %s: %w", id, store.Classify(err)))
	}
	now := s.now()
	var out *wire.Release
	var ts *toSeal
	var werr *wire.Error
	var vm string
	changed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := getRequest(ctx, tx, id)
		if errors.Is(err, store.ErrNotFound) {
			werr = refusal(wire.CodeRequestUnknown, "no such request")
			return nil
		}
		if err != nil {
			return err
		}
		vm = r.VMID
		if (r.Status == StatusPending || r.Status == StatusApproved) && !now.Before(r.ExpiresAt) {
			werr = refusal(wire.CodeRequestExpired, "the request expired before it was approved and collected")
			changed = true
			return s.expireTx(ctx, tx, r, now)
		}
		switch r.Status {
		case StatusPending:
			out = &wire.Release{RequestID: r.ID, Status: wire.StatusPending, Class: string(r.Class), RetryAfter: 5, ExpiresAt: r.ExpiresAt, Simulated: r.Simulated}
			return nil
		case StatusDenied:
			werr = refusal(wire.CodeDeniedByOfficer, r.Reason)
			return nil
		case StatusExpired:
			werr = refusal(wire.CodeRequestExpired, r.Reason)
			return nil
		case StatusCompleted:
			werr = refusal(wire.CodeRequestUnknown, "the request was completed; start a new one")
			return nil
		}
		// Approved: check again what may have changed since.
		changed = true
		ts.wipe()
		out, ts, werr, err = s.collectTx(ctx, tx, r, now)
		return err
	})
	if err != nil {
		ts.wipe()
		return nil, s.internal("poll", err)
	}
	if ts != nil {
		if err := ts.seal(out); err != nil {
			return nil, s.internal("seal", err)
		}
	}
	if changed {
		s.emit(Event{Kind: "request", RequestID: id})
		s.emit(Event{Kind: "fleet", VMID: vm})
	}
	if werr != nil {
		return nil, werr
	}
	return out, nil
}

// collectTx releases the secret of an approved request.
func (s *Service) collectTx(ctx context.Context, tx *sql.Tx, r Request, now time.Time) (*wire.Release, *toSeal, *wire.Error, error) {
	final := func(code wire.Code, msg string) (*wire.Release, *toSeal, *wire.Error, error) {
		if _, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'denied', reason = ?, decided_at = ? WHERE id = ?`, msg, store.Time(now), r.ID); err != nil {
			return nil, nil, nil, err
		}
		if err := fleet.SetStatusTx(ctx, tx, r.VMID, fleet.Failing, msg); err != nil {
			return nil, nil, nil, err
		}
		_, err := s.audit.Append(ctx, tx, audit.Entry{At: now, Actor: "console", Action: "release", Subject: r.VolumeID, Decision: "denied",
			Reason: fmt.Sprintf("%s: %s (request %s)", code, msg, r.ID), EvidenceHash: r.EvidenceHash})
		return nil, nil, refusal(code, msg), err
	}
	// Every approval must be bound to the evidence this request carries.
	var bound, unbound int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(CASE WHEN evidence_hash = ? THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN evidence_hash != ? THEN 1 ELSE 0 END), 0) FROM approvals WHERE request_id = ?`,
		r.EvidenceHash, r.EvidenceHash, r.ID).Scan(&bound, &unbound); err != nil {
		return nil, nil, nil, fmt.Errorf("read approvals: %w", store.Classify(err))
	}
	if unbound > 0 || bound < r.ApprovalsNeeded {
		return final(wire.CodeDeniedByOfficer, "the approvals do not cover this evidence")
	}
	hist, err := fleet.Lookup(ctx, tx, r.VMID, r.VolumeID, "", "", "")
	if err != nil {
		return nil, nil, nil, err
	}
	if hist.Revoked {
		return final(wire.CodeVMRevoked, "the VM was revoked after the approval")
	}
	vol, err := readVolume(ctx, tx, r.VolumeID)
	if err != nil {
		return nil, nil, nil, err
	}
	if !vol.exists || vol.status != "active" {
		return final(wire.CodeVolumeRevoked, "the volume was revoked after the approval")
	}
	var claims Claims
	var pub []byte
	var claimsJSON string
	if err := tx.QueryRowContext(ctx, `SELECT claims, hpke_public_key FROM approval_requests WHERE id = ?`, r.ID).Scan(&claimsJSON, &pub); err != nil {
		return nil, nil, nil, fmt.Errorf("read request: %w", store.Classify(err))
	}
	if err := json.Unmarshal([]byte(claimsJSON), &claims); err != nil {
		return nil, nil, nil, fmt.Errorf("request %s claims: %w", r.ID, err)
	}
	// The policy and the reference values as they are now: an officer may
	// have tightened them since the approval.
	policy, _, err := loadPolicy(ctx, tx, vol.imageID)
	if err != nil {
		return nil, nil, nil, err
	}
	if code, msg := policyStillAllows(policy, r, claims, bound); code != "" {
		return final(code, msg)
	}
	if vol.imageID != "" {
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM reference_values WHERE image_id = ?`, vol.imageID).Scan(&current); err != nil {
			return nil, nil, nil, fmt.Errorf("read reference values: %w", store.Classify(err))
		}
		verified := claims.ReferenceVersion
		if claims.Unreferenced {
			verified = 0
		}
		if current != verified {
			return final(wire.CodeEvidenceInvalid, fmt.Sprintf("the reference values of image %s changed after the approval (checked against version %d, now %d); the guest must ask again",
				vol.imageID, verified, current))
		}
	}
	names := make([]string, 0, len(r.Approvals))
	for _, a := range r.Approvals {
		names = append(names, a.Officer)
	}
	if claims.Unreferenced && len(claims.ProposedReference) > 0 && vol.imageID != "" {
		// The officers' pick becomes the image's reference values; if
		// another claim pinned different ones meanwhile, this launch is not
		// admitted by them.
		if rr, ok := s.verifier.(ReferenceRecorder); ok {
			err := rr.RecordReferenceTx(ctx, s.audit, tx, now, vol.imageID, claims.ProposedReference, officerActor(strings.Join(names, "+")))
			if errors.Is(err, ErrPinnedOtherwise) {
				return final(wire.CodeDeniedByPolicy, "the image's reference values were pinned by another first boot meanwhile and do not admit this measurement")
			}
			if err != nil {
				return nil, nil, nil, err
			}
		}
	}
	rel, ts, err := s.releaseTx(ctx, tx, releaseArgs{
		reqID: r.ID, vmID: r.VMID, volumeID: r.VolumeID, imageID: vol.imageID, purpose: wire.Purpose(r.Purpose), gen: r.Generation,
		pub: pub, claims: claims, evHash: r.EvidenceHash, class: Class(r.Class), now: now, heartbeat: policy.Heartbeat(),
		reason: "approved by " + strings.Join(names, ", "), actor: guestActor(r.VMID),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	// Only an approved request completes, once: a replica that raced this
	// one to the same request finds it completed and releases nothing.
	res, err := tx.ExecContext(ctx, `UPDATE approval_requests SET status = 'completed', completed_at = ? WHERE id = ? AND status = 'approved'`, store.Time(now), r.ID)
	if err != nil {
		ts.wipe()
		return nil, nil, nil, fmt.Errorf("complete request: %w", store.Classify(err))
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		ts.wipe()
		return nil, nil, nil, fmt.Errorf("complete request %s: it is no longer approved (%v)", r.ID, err)
	}
	return rel, ts, nil, nil
}
