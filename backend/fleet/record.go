package fleet

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/store"
)

// Results an attestation can have.
const (
	ResultReleased = "released" // a secret was released
	ResultPending  = "pending"  // an officer must decide
	ResultDenied   = "denied"   // refused
	ResultVerified = "verified" // heartbeat with good evidence
	ResultFailing  = "failing"  // heartbeat with refused evidence
)

// Observation is one decided release request or heartbeat, as the fleet
// records it.
type Observation struct {
	At       time.Time
	VMID     string
	VolumeID string
	ImageID  string
	Kind     string // release, heartbeat, approval
	Result   string // Result* constants
	Status   Status // the VM's new status; "" leaves it unchanged
	// Reason for the status (a class or a refusal message).
	Class, Code, Message string
	RequestID            string
	EvidenceHash         string
	// Authentic is true when the evidence verified (whatever the decision):
	// only then are its chip, measurement and TCB taken as the VM's.
	Authentic bool
	Product   string
	// Signer is VCEK or VLEK; ChipID the VCEK's hardware ID ("" for a VLEK).
	Signer      string
	ChipID      string
	Measurement string
	ReportID    string
	TCB         TCB
	Simulated   bool
	// Released: a secret went to this launch, so its chip, measurement, TCB
	// and launch become approved for the VM, and VolumeID becomes one of the
	// VM's volumes (vm_volumes).
	Released   bool
	Generation int
	// HeartbeatEvery sets when a verified VM turns stale (three intervals).
	HeartbeatEvery time.Duration
	// Exists says that the caller read, in this transaction and under a
	// lock that keeps it so (the release engine's: the VM's key), that
	// the VM's row exists: Record then sends all its statements at once.
	Exists bool
	// ChipKnown and MeasurementKnown say, as Exists does, that the VM's
	// chip and measurement are recorded already (History.ChipApproved,
	// History.MeasurementSeen): a release then leaves their rows alone.
	ChipKnown, MeasurementKnown bool
	// Create makes the VM's row when it does not exist yet. Unauthenticated
	// requests never create rows.
	Create bool
	// Evidence is the decoded, verified evidence (JSON) the Guest screen
	// explains; kept for authentic observations, and as the approved
	// evidence when Released.
	Evidence json.RawMessage
}

// History is what the fleet remembers about a VM, for the release engine.
type History struct {
	Exists  bool
	Revoked bool
	// VolumeReleased: the volume asked for was released to this VM before
	// (it is one of the VM's volumes).
	VolumeReleased  bool
	EverReleased    bool
	ChipApproved    bool
	MeasurementSeen bool
	ApprovedTCB     *TCB
	// ReportIDOtherVM: the launch received a release for another VM.
	ReportIDOtherVM bool
	// ReportIDEarlierLaunch: the launch is one of this VM's earlier ones.
	ReportIDEarlierLaunch bool
	// SameLaunch: the launch is the one the VM's last release went to.
	SameLaunch bool
}

// Queryer runs read queries in a transaction or on the database.
type Queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Writer runs statements in a write transaction: a *sql.Tx, or a wrapper
// that reuses prepared statements across the decisions of one group commit.
type Writer interface {
	Queryer
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Lookup reads what the fleet knows about vmID asking for volumeID, seen
// on chipID with measurement and launch reportID, in one statement (it runs
// for every release and heartbeat).
func Lookup(ctx context.Context, q Queryer, vmID, volumeID, chipID, measurement, reportID string) (History, error) {
	var r lookupRow
	err := q.QueryRowContext(ctx, lookupSQL, vmID, chipID, measurement, reportID, volumeID).Scan(r.dest()...)
	if err != nil {
		return History{}, fmt.Errorf("look up guest %s: %w", vmID, store.Classify(err))
	}
	return r.history(vmID)
}

// QueueLookup queues Lookup's statement in b; once b ran, the returned
// function gives its result.
func QueueLookup(b *store.Batch, vmID, volumeID, chipID, measurement, reportID string) func() (History, error) {
	var r lookupRow
	got := false
	b.Query(func(scan func(...any) error) error {
		got = true
		return scan(r.dest()...)
	}, lookupSQL, vmID, chipID, measurement, reportID, volumeID)
	return func() (History, error) {
		if !got {
			return History{}, fmt.Errorf("look up guest %s: no answer", vmID)
		}
		return r.history(vmID)
	}
}

// The guest's row once (a LEFT JOIN keeps the row for an unknown guest),
// the rest as point lookups.
const lookupSQL = `SELECT
		v.id IS NOT NULL,
		COALESCE(v.revoked, 0),
		EXISTS (SELECT 1 FROM vm_volumes WHERE vm_id = ?1 AND volume_id = ?5),
		COALESCE(v.approved_tcb, ''),
		COALESCE(v.last_release_at, ''),
		EXISTS (SELECT 1 FROM vm_chips WHERE vm_id = ?1 AND chip_id = ?2),
		EXISTS (SELECT 1 FROM vm_measurements WHERE vm_id = ?1 AND measurement = ?3),
		?4 != '' AND ?4 != COALESCE(v.report_id, '') AND EXISTS (SELECT 1 FROM vm_launches WHERE report_id = ?4 AND vm_id = ?1),
		?4 != '' AND EXISTS (SELECT 1 FROM vm_launches WHERE report_id = ?4 AND vm_id != ?1),
		?4 != '' AND ?4 = COALESCE(v.report_id, '')
		FROM (SELECT 1) AS one LEFT JOIN vms v ON v.id = ?1`

// lookupRow is lookupSQL's row.
type lookupRow struct {
	exists, revoked, vol, chip, meas, earlier, other, same int
	tcb, lastRelease                                       string
}

func (r *lookupRow) dest() []any {
	return []any{&r.exists, &r.revoked, &r.vol, &r.tcb, &r.lastRelease, &r.chip, &r.meas, &r.earlier, &r.other, &r.same}
}

func (r *lookupRow) history(vmID string) (History, error) {
	var h History
	h.ReportIDOtherVM = r.other > 0
	if r.exists == 0 {
		return h, nil
	}
	h.Exists, h.Revoked, h.EverReleased = true, r.revoked != 0, r.lastRelease != ""
	h.VolumeReleased = h.EverReleased && r.vol > 0
	if r.tcb != "" {
		var t TCB
		if err := json.Unmarshal([]byte(r.tcb), &t); err != nil {
			return h, fmt.Errorf("guest %s: approved TCB: %w", vmID, err)
		}
		h.ApprovedTCB = &t
	}
	h.ChipApproved, h.MeasurementSeen, h.ReportIDEarlierLaunch = r.chip > 0, r.meas > 0, r.earlier > 0
	h.SameLaunch = r.same > 0 && h.EverReleased
	return h, nil
}

// EvidenceSeen reports whether evidence with this hash was decided before.
// A run of verified heartbeats keeps its first one's hash only; the others
// are as unrepeatable as every request is, by their single-use nonces.
func EvidenceSeen(ctx context.Context, q Queryer, evidenceHash string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, evidenceSeenSQL, evidenceHash).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up evidence: %w", store.Classify(err))
	}
	return n > 0, nil
}

// QueueEvidenceSeen queues EvidenceSeen's statement in b; once b ran,
// *seen holds its answer.
func QueueEvidenceSeen(b *store.Batch, evidenceHash string, seen *bool) {
	b.Query(func(scan func(...any) error) error {
		var n int
		if err := scan(&n); err != nil {
			return err
		}
		*seen = n > 0
		return nil
	}, evidenceSeenSQL, evidenceHash)
}

const evidenceSeenSQL = `SELECT COUNT(*) FROM attestations WHERE evidence_hash = ? AND evidence_hash != '' AND kind != 'approval'`

// Record writes an observation inside the caller's transaction: the VM's row
// (created when o.Create), its approved chips, measurements and launches
// when a secret was released, and one history row. It returns whether the
// VM's row exists afterwards.
func Record(ctx context.Context, tx Writer, o Observation) (bool, error) {
	at := store.Time(o.At)
	tcb, _ := json.Marshal(o.TCB)
	reason := o.Message
	if reason == "" {
		reason = o.Class
	}
	staleAfter := ""
	if o.Authentic && o.Status == Verified {
		every := o.HeartbeatEvery
		if every <= 0 {
			every = time.Minute
		}
		staleAfter = store.Time(o.At.Add(3 * every))
	}
	var img any
	if o.ImageID != "" {
		img = o.ImageID
	}
	// One UPDATE carries what the observation changes in columns no index
	// covers. The indexed ones (status, volume_id) are set by separate
	// statements only when their value changes: SQLite rewrites an
	// index entry for every indexed column an UPDATE names, changed or not,
	// and a routine release or heartbeat would pay a page write per index
	// for nothing.
	//
	// approved_evidence is '=' when it equals evidence (after a release,
	// until newer evidence arrives), so a release does not store the same
	// decoded evidence twice; approvedEvidenceSQL reads it back.
	// The statements after the first UPDATE need none of its results but
	// the row count: they go out together (store.Batch: on PostgreSQL one
	// round trip instead of up to eight), in the order written here.
	//
	// When the caller knows that the VM's row exists (Exists), the first
	// UPDATE goes with them: nothing waits for its row count.
	var writes store.Batch
	updateArgs := []any{string(o.Status), reason, boolInt(o.Simulated), o.Authentic, o.Product, o.ChipID, o.Measurement, string(tcb), at,
		staleAfter, o.Released, img, o.Generation, o.VMID, string(o.Evidence), o.ReportID, o.Signer}
	update := func() (int64, error) {
		var n int64 = 1
		if o.Exists {
			writes.Exec(updateVMSQL, updateArgs...)
		} else {
			res, err := tx.ExecContext(ctx, updateVMSQL, updateArgs...)
			if err != nil {
				return 0, fmt.Errorf("update guest %s: %w", o.VMID, store.Classify(err))
			}
			if n, err = res.RowsAffected(); err != nil || n == 0 {
				return n, err
			}
		}
		if o.Status != "" {
			// A revoked VM stays revoked.
			writes.Exec(`UPDATE vms SET status = CASE WHEN revoked != 0 THEN 'revoked' ELSE ?1 END
				WHERE id = ?2 AND status != CASE WHEN revoked != 0 THEN 'revoked' ELSE ?1 END`, string(o.Status), o.VMID)
		}
		if o.Released {
			// vms.volume_id is the volume of the latest release; the VM's
			// volumes are in vm_volumes.
			writes.Exec(`UPDATE vms SET volume_id = NULLIF(?1, '') WHERE id = ?2 AND volume_id IS DISTINCT FROM NULLIF(?1, '')`,
				o.VolumeID, o.VMID)
		}
		return n, nil
	}
	n, err := update()
	if err != nil {
		return false, err
	}
	if n == 0 {
		if !o.Create {
			return false, nil
		}
		var vol any
		if o.VolumeID != "" {
			vol = o.VolumeID
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO vms(id, name, image_id, volume_id, status, created_at) VALUES (?, ?, ?, ?, 'pending', ?)`,
			o.VMID, o.VMID, img, vol, at); err != nil {
			return false, fmt.Errorf("add guest %s: %w", o.VMID, store.Classify(err))
		}
		if _, err := update(); err != nil {
			return false, err
		}
	}
	if o.Released {
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO vm_launches(vm_id, report_id, first_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, []any{o.VMID, o.ReportID, at}},
			// A VLEK names no chip: nothing to approve (classification
			// treats every new VLEK launch by the image's policy).
			{`INSERT INTO vm_chips(vm_id, chip_id, first_seen) SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), CAST(?3 AS TEXT) WHERE ?2 != '' ON CONFLICT DO NOTHING`, []any{o.VMID, o.ChipID, at}},
			{`INSERT INTO vm_measurements(vm_id, measurement, first_seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, []any{o.VMID, o.Measurement, at}},
			{`INSERT INTO vm_volumes(vm_id, volume_id, first_release_at, last_release_at, generation) SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), CAST(?3 AS TEXT), CAST(?3 AS TEXT), CAST(?4 AS BIGINT) WHERE ?2 != ''
				ON CONFLICT (vm_id, volume_id) DO UPDATE SET last_release_at = excluded.last_release_at, generation = excluded.generation`, []any{o.VMID, o.VolumeID, at, o.Generation}},
		} {
			// Rows the caller read, under the VM's lock, to be there
			// already would not change: their statements are left out.
			if (o.ChipKnown && strings.HasPrefix(q.sql, "INSERT INTO vm_chips")) ||
				(o.MeasurementKnown && strings.HasPrefix(q.sql, "INSERT INTO vm_measurements")) {
				continue
			}
			writes.Exec(q.sql, q.args...)
		}
	}
	insertAttestation := func(b *store.Batch) {
		b.Exec(`INSERT INTO attestations(vm_id, at, kind, result, class, code, message, request_id, evidence_hash, chip_id, measurement, tcb, simulated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.VMID, at, o.Kind, o.Result, o.Class, o.Code, o.Message, o.RequestID, o.EvidenceHash, o.ChipID, o.Measurement, string(tcb), boolInt(o.Simulated))
	}
	if o.Kind == "heartbeat" && o.Result == ResultVerified {
		// A heartbeat that shows nothing new extends the guest's newest
		// row if that is a run of such heartbeats (migration 0008); if
		// none was extended, a new row follows.
		extended := false
		writes.ExecThen(func(n int64) error { extended = n == 1; return nil }, `UPDATE attestations SET last_at = ?1, count = count + 1
			WHERE id = (SELECT MAX(id) FROM attestations WHERE vm_id = ?2)
			AND kind = 'heartbeat' AND result = 'verified' AND chip_id = ?3 AND measurement = ?4 AND tcb = ?5 AND simulated = ?6`,
			at, o.VMID, o.ChipID, o.Measurement, string(tcb), boolInt(o.Simulated))
		if err := store.RunBatch(ctx, tx, &writes); err != nil {
			return false, fmt.Errorf("record heartbeat of %s: %w", o.VMID, err)
		}
		if extended {
			return true, nil
		}
		writes = store.Batch{}
	}
	insertAttestation(&writes)
	if err := store.RunBatch(ctx, tx, &writes); err != nil {
		return false, fmt.Errorf("record attestation of %s: %w", o.VMID, err)
	}
	return true, nil
}

// updateVMSQL is Record's UPDATE of the VM's row.
const updateVMSQL = `UPDATE vms SET
			status_reason = CASE WHEN ?1 = '' THEN status_reason ELSE ?2 END,
			simulated = CASE WHEN ?1 = '' THEN simulated ELSE ?3 END,
			product = CASE WHEN ?4 != 0 THEN ?5 ELSE product END,
			chip_id = CASE WHEN ?4 != 0 THEN ?6 ELSE chip_id END,
			signer = CASE WHEN ?4 != 0 THEN ?17 ELSE signer END,
			measurement = CASE WHEN ?4 != 0 THEN ?7 ELSE measurement END,
			tcb = CASE WHEN ?4 != 0 THEN ?8 ELSE tcb END,
			last_evidence_at = CASE WHEN ?4 != 0 THEN ?9 ELSE last_evidence_at END,
			stale_after = CASE WHEN ?10 != '' THEN ?10 ELSE stale_after END,
			image_id = CASE WHEN ?11 != 0 THEN COALESCE(?12, image_id) ELSE image_id END,
			generation = CASE WHEN ?11 != 0 THEN ?13 ELSE generation END,
			approved_tcb = CASE WHEN ?11 != 0 THEN ?8 ELSE approved_tcb END,
			last_release_at = CASE WHEN ?11 != 0 THEN ?9 ELSE last_release_at END,
			report_id = CASE WHEN ?11 != 0 THEN ?16 ELSE report_id END,
			evidence = CASE WHEN ?4 != 0 AND ?15 != '' THEN ?15 ELSE evidence END,
			approved_evidence = CASE
				WHEN ?11 != 0 AND ?15 != '' THEN '='
				WHEN ?4 != 0 AND ?15 != '' AND approved_evidence = '=' THEN evidence
				ELSE approved_evidence END
			WHERE id = ?14`

// SetGenerationTx records that VM vmID now boots from generation gen of
// volume volumeID (a confirmed key rotation).
func SetGenerationTx(ctx context.Context, tx Writer, vmID, volumeID string, gen int) error {
	if _, err := tx.ExecContext(ctx, `UPDATE vms SET generation = ? WHERE id = ?`, gen, vmID); err != nil {
		return fmt.Errorf("set generation of %s: %w", vmID, store.Classify(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE vm_volumes SET generation = ? WHERE vm_id = ? AND volume_id = ?`, gen, vmID, volumeID); err != nil {
		return fmt.Errorf("set generation of %s on %s: %w", volumeID, vmID, store.Classify(err))
	}
	return nil
}

// VolumesOf returns the volumes released to vmID, by ID.
func VolumesOf(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, vmID string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT volume_id FROM vm_volumes WHERE vm_id = ? ORDER BY volume_id`, vmID)
	if err != nil {
		return nil, fmt.Errorf("volumes of %s: %w", vmID, store.Classify(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// SetStatusTx sets a VM's status and reason (for example pending → failing
// when an officer denies its request). A revoked VM stays revoked.
func SetStatusTx(ctx context.Context, tx Writer, vmID string, st Status, reason string) error {
	_, err := tx.ExecContext(ctx, `UPDATE vms SET status = CASE WHEN revoked != 0 THEN 'revoked' ELSE ? END, status_reason = ? WHERE id = ?`, string(st), reason, vmID)
	if err != nil {
		return fmt.Errorf("set status of %s: %w", vmID, store.Classify(err))
	}
	return nil
}

// ApprovedEvidence returns the decoded evidence of the VM's last released
// launch, or nil before its first release.
func ApprovedEvidence(ctx context.Context, q Queryer, vmID string) (json.RawMessage, error) {
	var ev string
	err := q.QueryRowContext(ctx, `SELECT `+approvedEvidenceSQL+` FROM vms WHERE id = ?`, vmID).Scan(&ev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("guest %s: %w", vmID, store.Classify(err))
	}
	if ev == "" {
		return nil, nil
	}
	return json.RawMessage(ev), nil
}

// approvedEvidenceSQL reads vms.approved_evidence ('=': the same as
// evidence, see Record).
const approvedEvidenceSQL = `CASE approved_evidence WHEN '=' THEN evidence ELSE approved_evidence END`

func jsonOrNull(s string) json.RawMessage {
	if s == "" || !json.Valid([]byte(s)) {
		return json.RawMessage("null")
	}
	return json.RawMessage(s)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Attestation is one row of a guest's history: one observation, or a run
// of Count verified heartbeats that showed the guest unchanged, the first
// At, the newest LastAt (EvidenceHash is the first one's).
type Attestation struct {
	ID           int64     `json:"id"`
	At           time.Time `json:"at"`
	LastAt       time.Time `json:"last_at"`
	Count        int       `json:"count"`
	Kind         string    `json:"kind"`
	Result       string    `json:"result"`
	Class        string    `json:"class"`
	Code         string    `json:"code"`
	Message      string    `json:"message"`
	RequestID    string    `json:"request_id"`
	EvidenceHash string    `json:"evidence_hash"`
	ChipID       string    `json:"chip_id"`
	Measurement  string    `json:"measurement"`
	TCB          TCB       `json:"tcb"`
	Simulated    bool      `json:"simulated"`
}

// GuestDetail is one guest with its recent history, newest first.
type GuestDetail struct {
	Guest
	StatusReason string        `json:"status_reason"`
	History      []Attestation `json:"history"`
	// Evidence is the decoded evidence of the newest authentic report;
	// ApprovedEvidence that of the last released launch (null before).
	Evidence         json.RawMessage `json:"evidence"`
	ApprovedEvidence json.RawMessage `json:"approved_evidence"`
}

// Get returns one guest and its latest limit history rows (0: 100).
func (s *Service) Get(ctx context.Context, id string, limit int) (GuestDetail, error) {
	if limit <= 0 || limit > 10000 {
		limit = 100
	}
	var d GuestDetail
	gs, err := s.list(ctx, Filter{}, []string{id})
	if err != nil {
		return d, err
	}
	if len(gs) == 0 {
		return d, fmt.Errorf("guest %s: %w", id, store.ErrNotFound)
	}
	d.Guest = gs[0]
	var ev, approved string
	if err := s.db.QueryRowContext(ctx, `SELECT status_reason, evidence, `+approvedEvidenceSQL+` FROM vms WHERE id = ?`, id).Scan(&d.StatusReason, &ev, &approved); err != nil {
		return d, fmt.Errorf("guest %s: %w", id, store.Classify(err))
	}
	d.Evidence, d.ApprovedEvidence = jsonOrNull(ev), jsonOrNull(approved)
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, last_at, count, kind, result, class, code, message, request_id, evidence_hash, chip_id, measurement, tcb, simulated
		FROM attestations WHERE vm_id = ? ORDER BY id DESC LIMIT ?`, id, limit)
	if err != nil {
		return d, fmt.Errorf("guest %s history: %w", id, store.Classify(err))
	}
	defer rows.Close()
	d.History = []Attestation{}
	for rows.Next() {
		var a Attestation
		var at, last, tcb string
		var sim int
		if err := rows.Scan(&a.ID, &at, &last, &a.Count, &a.Kind, &a.Result, &a.Class, &a.Code, &a.Message, &a.RequestID, &a.EvidenceHash, &a.ChipID, &a.Measurement, &tcb, &sim); err != nil {
			return d, err
		}
		a.At, _ = store.ParseTime(at)
		a.LastAt = a.At
		if last != "" {
			a.LastAt, _ = store.ParseTime(last)
		}
		json.Unmarshal([]byte(tcb), &a.TCB)
		a.Simulated = sim != 0
		d.History = append(d.History, a)
	}
	return d, rows.Err()
}

// RequestCloser denies the open release requests (pending, or approved and
// not collected) of revoked guest vmID inside the revocation's transaction,
// each audited as actor's denial in log. The release engine owns release requests
// and imports fleet, so fleet takes it as a function:
// release.DenyRequestsOfRevokedTx.
type RequestCloser func(ctx context.Context, log *audit.Log, tx *sql.Tx, actor, vmID, reason string, now time.Time) error

// Revoke marks a guest revoked: every release and heartbeat it makes is
// refused until an officer reinstates it. closeRequests denies its open
// release requests in the same transaction, so no approval given before
// the revocation outlives it.
func (s *Service) Revoke(ctx context.Context, actor, id, reason string, closeRequests RequestCloser) error {
	if closeRequests == nil {
		return fmt.Errorf("revoke guest %s: no closer for its release requests", id)
	}
	now := s.db.Now()
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE vms SET revoked = 1, status = 'revoked', status_reason = ? WHERE id = ?`, reason, id)
		if err != nil {
			return fmt.Errorf("revoke guest %s: %w", id, store.Classify(err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("guest %s: %w", id, store.ErrNotFound)
		}
		if _, err := s.log.Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "guest.revoke", Subject: id, Decision: "revoked", Reason: reason}); err != nil {
			return err
		}
		return closeRequests(ctx, s.log, tx, actor, id, reason, now)
	})
}

// Reinstate clears a guest's revocation; its next request is classified
// afresh. Audited in the same transaction.
func (s *Service) Reinstate(ctx context.Context, actor, id, reason string) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE vms SET revoked = 0, status = 'pending', status_reason = 'reinstated' WHERE id = ? AND revoked != 0`, id)
		if err != nil {
			return fmt.Errorf("reinstate guest %s: %w", id, store.Classify(err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("guest %s is not revoked: %w", id, store.ErrNotFound)
		}
		_, err = s.log.Append(ctx, tx, audit.Entry{At: s.db.Now(), Actor: actor, Action: "guest.reinstate", Subject: id, Decision: "reinstated", Reason: reason})
		return err
	})
}
