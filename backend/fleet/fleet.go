// Package fleet keeps the console's view of its guests: each confidential VM
// that asked for a key, its attestation status (verified, stale, failing,
// pending, revoked), the chip and TCB it last proved, and when.
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

// Status is a guest's attestation state.
type Status string

// The statuses a guest can have.
const (
	Verified Status = "verified"
	Stale    Status = "stale"
	Failing  Status = "failing"
	Pending  Status = "pending"
	Revoked  Status = "revoked"
)

// Statuses lists every status in display order.
var Statuses = []Status{Verified, Pending, Failing, Stale, Revoked}

// TCB is the TCB components a report carries: four on Milan and Genoa,
// and the FMC as a fifth on Turin (zero elsewhere). Every component takes
// part in comparisons, so an FMC update is a platform change.
type TCB struct {
	Bootloader uint8 `json:"bootloader"`
	TEE        uint8 `json:"tee"`
	SNP        uint8 `json:"snp"`
	Microcode  uint8 `json:"microcode"`
	FMC        uint8 `json:"fmc,omitempty"`
}

// Guest is one VM as the console last saw it.
type Guest struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ImageID   string `json:"image_id"`
	ImageName string `json:"image_name"`
	// VolumeID is the volume of the guest's latest release; Volumes every
	// volume released to it (an encrypted root and its data disks), by ID.
	VolumeID string   `json:"volume_id"`
	Volumes  []string `json:"volumes"`
	Status   Status   `json:"status"`
	Product  string   `json:"product"`
	// ChipID is the chip's identity: the hardware ID of the VCEK that
	// signed the guest's last authentic report (never the report's
	// maskable CHIP_ID); "" when a VLEK signed it.
	ChipID string `json:"chip_id"`
	// Signer is VCEK or VLEK; ChipIdentity says in words what the console
	// knows about the chip ("none (VLEK)" when it cannot tell chips apart).
	Signer         string     `json:"signer"`
	ChipIdentity   string     `json:"chip_identity"`
	Measurement    string     `json:"measurement"`
	TCB            TCB        `json:"tcb"`
	Generation     int        `json:"generation"`
	Simulated      bool       `json:"simulated"`
	LastEvidenceAt *time.Time `json:"last_evidence_at"`
	CreatedAt      time.Time  `json:"created_at"`
	// Reason is why a failing guest fails: the message of its latest
	// refused attestation, or the status reason when none was refused (an
	// expired request); "" for other statuses.
	Reason string `json:"reason"`
	// ReasonCode is that attestation's refusal code (a wire code such as
	// "evidence_invalid", "denied_by_officer"), for the next step the
	// console suggests; "" for other statuses.
	ReasonCode string `json:"reason_code"`
}

// Filter narrows a listing. Zero fields match everything.
type Filter struct {
	Status Status `json:"status"`
	Search string `json:"search"` // substring of ID, name, image, chip ID
	Limit  int    `json:"limit"`  // 0 means all
	// After, with OrderID, starts the listing after this VM ID: a client
	// reads a large fleet in slices (keyset paging), and every guest that
	// exists throughout is read exactly once, however the others change.
	After string `json:"after"`
	// Order is "" (most recently seen first), OrderAttention: failing,
	// pending, stale, revoked, then verified guests, newest evidence first
	// within each (with Limit, the first page of what needs an officer), or
	// OrderID: by VM ID (with Limit and After, cheap slices of the fleet).
	Order string `json:"order"`
}

// OrderID lists the guests by VM ID, the order of keyset paging (After).
const OrderID = "id"

// ErrInvalidPage is a negative limit, or After without OrderID.
var ErrInvalidPage = errors.New("a page needs a limit of at least 0, and after needs order \"id\"")

// OrderAttention lists the guests that need an officer first.
const OrderAttention = "attention"

// ValidPage says whether f's paging makes sense: no negative limit, and
// After only in ID order.
func (f Filter) ValidPage() bool {
	return f.Limit >= 0 && (f.After == "" || f.Order == OrderID)
}

// Summary counts guests by status.
type Summary struct {
	Total    int            `json:"total"`
	ByStatus map[Status]int `json:"by_status"`
}

// Service reads and writes the fleet.
type Service struct {
	db  *store.DB
	log *audit.Log
}

// New returns a fleet service over db that audits revocations in log (the
// console's, custody.Service.AuditLog; a read-only caller may pass
// audit.NewLog(db)).
func New(db *store.DB, log *audit.Log) *Service { return &Service{db: db, log: log} }

// statusExpr is a guest's effective status: a verified guest whose last
// evidence is older than three heartbeat intervals is stale. The first
// argument is the current time (store.Time).
const statusExpr = `CASE WHEN v.status = 'verified' AND v.stale_after != '' AND v.stale_after < ? THEN 'stale' ELSE v.status END`

// List returns the guests that match f, most recently seen first.
func (s *Service) List(ctx context.Context, f Filter) ([]Guest, error) {
	return s.list(ctx, f, nil)
}

// Guests returns the guests with these IDs (those that exist), in one
// query: the console pushes a batch of changed guests with it.
func (s *Service) Guests(ctx context.Context, ids []string) ([]Guest, error) {
	if len(ids) == 0 {
		return []Guest{}, nil
	}
	return s.list(ctx, Filter{}, ids)
}

func (s *Service) list(ctx context.Context, f Filter, ids []string) ([]Guest, error) {
	now := store.Time(s.db.Now())
	q := `SELECT v.id, v.name, COALESCE(v.image_id, ''), COALESCE(i.name, ''), COALESCE(v.volume_id, ''),
		` + statusExpr + `, v.product, v.chip_id, v.signer, v.measurement, v.tcb, v.generation, v.simulated,
		v.last_evidence_at, v.created_at,
		CASE WHEN v.status = 'failing' THEN COALESCE((SELECT CASE WHEN a.message != '' THEN a.message ELSE a.code END || ? || a.code
			FROM attestations a WHERE a.vm_id = v.id AND a.result NOT IN ('released', 'verified', 'pending', 'approved') ORDER BY a.id DESC LIMIT 1), v.status_reason) ELSE '' END
		FROM vms v LEFT JOIN images i ON i.id = v.image_id WHERE `
	// The failing reason and its code travel as one text, split at the unit
	// separator (a parameter: SQLite spells it char(31), PostgreSQL chr(31)).
	args := []any{now, "\x1f"}
	where := `1=1`
	var wargs []any
	if ids != nil {
		where += ` AND v.id IN (?` + strings.Repeat(`, ?`, len(ids)-1) + `)`
		for _, id := range ids {
			wargs = append(wargs, id)
		}
	}
	if f.Status != "" {
		where += ` AND ` + statusExpr + ` = ?`
		wargs = append(wargs, now, string(f.Status))
	}
	if s := strings.TrimSpace(f.Search); s != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(s)) + "%"
		where += ` AND (lower(v.id) LIKE ? ESCAPE '\' OR lower(v.name) LIKE ? ESCAPE '\' OR lower(COALESCE(i.name, '')) LIKE ? ESCAPE '\' OR lower(v.chip_id) LIKE ? ESCAPE '\')`
		wargs = append(wargs, like, like, like, like)
	}
	if f.After != "" {
		where += ` AND v.id > ?`
		wargs = append(wargs, f.After)
	}
	order := ` ORDER BY`
	var oargs []any
	if f.Order == OrderID {
		order += ` v.id`
	} else if f.Order == OrderAttention {
		order += ` CASE ` + statusExpr + ` WHEN 'failing' THEN 0 WHEN 'pending' THEN 1 WHEN 'stale' THEN 2 WHEN 'revoked' THEN 3 ELSE 4 END,`
		oargs = append(oargs, now)
	}
	if f.Order != OrderID {
		order += ` v.last_evidence_at IS NULL, v.last_evidence_at DESC, v.id`
	}
	if !f.ValidPage() {
		return nil, fmt.Errorf("list guests: %w", ErrInvalidPage)
	}
	if f.Limit > 0 {
		// A page: pick its IDs first (a sort of narrow rows), so that the
		// failing reason's subquery runs for the page only, not for every
		// failing guest of a large fleet.
		q += `v.id IN (SELECT v.id FROM vms v LEFT JOIN images i ON i.id = v.image_id WHERE ` + where + order + fmt.Sprintf(` LIMIT %d)`, f.Limit) + order
		args = append(append(append(args, wargs...), oargs...), oargs...)
	} else {
		q += where + order
		args = append(append(args, wargs...), oargs...)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list guests: %w", store.Classify(err))
	}
	defer rows.Close()
	out := []Guest{}
	for rows.Next() {
		var g Guest
		var tcb, created string
		var last sql.NullString
		var sim int
		if err := rows.Scan(&g.ID, &g.Name, &g.ImageID, &g.ImageName, &g.VolumeID, &g.Status, &g.Product,
			&g.ChipID, &g.Signer, &g.Measurement, &tcb, &g.Generation, &sim, &last, &created, &g.Reason); err != nil {
			return nil, fmt.Errorf("list guests: %w", err)
		}
		// One subquery reads the failing attestation's message and code,
		// joined by a unit separator (0x1f).
		g.Reason, g.ReasonCode, _ = strings.Cut(g.Reason, "\x1f")
		g.Simulated = sim != 0
		g.ChipIdentity = ChipIdentity(g.Signer, g.ChipID)
		if err := json.Unmarshal([]byte(tcb), &g.TCB); err != nil {
			return nil, fmt.Errorf("guest %s: tcb: %w", g.ID, err)
		}
		g.CreatedAt, _ = store.ParseTime(created)
		if last.Valid {
			t, err := time.Parse(time.RFC3339Nano, last.String)
			if err == nil {
				g.LastEvidenceAt = &t
			}
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	return out, s.fillVolumes(ctx, out)
}

// fillVolumes sets the Volumes of gs, reading vm_volumes for a few hundred
// guests at a time.
func (s *Service) fillVolumes(ctx context.Context, gs []Guest) error {
	const chunk = 500
	at := make(map[string]int, len(gs))
	for i := range gs {
		gs[i].Volumes = []string{}
		at[gs[i].ID] = i
	}
	for lo := 0; lo < len(gs); lo += chunk {
		part := gs[lo:min(lo+chunk, len(gs))]
		args := make([]any, len(part))
		for i, g := range part {
			args[i] = g.ID
		}
		rows, err := s.db.QueryContext(ctx, `SELECT vm_id, volume_id FROM vm_volumes WHERE vm_id IN (?`+strings.Repeat(`, ?`, len(part)-1)+`) ORDER BY vm_id, volume_id`, args...)
		if err != nil {
			return fmt.Errorf("list volumes of guests: %w", store.Classify(err))
		}
		for rows.Next() {
			var vm, vol string
			if err := rows.Scan(&vm, &vol); err != nil {
				rows.Close()
				return fmt.Errorf("list volumes of guests: %w", err)
			}
			if i, ok := at[vm]; ok {
				gs[i].Volumes = append(gs[i].Volumes, vol)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list volumes of guests: %w", err)
		}
	}
	return nil
}

// Summary counts the fleet by status.
func (s *Service) Summary(ctx context.Context) (Summary, error) {
	sum := Summary{ByStatus: map[Status]int{}}
	for _, st := range Statuses {
		sum.ByStatus[st] = 0
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+statusExpr+` AS st, COUNT(*) FROM vms v GROUP BY st`, store.Time(s.db.Now()))
	if err != nil {
		return sum, fmt.Errorf("count guests: %w", store.Classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var st Status
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return sum, err
		}
		sum.ByStatus[st] = n
		sum.Total += n
	}
	return sum, rows.Err()
}

// ChipIdentity says in words what the console knows about a guest's chip:
// the VCEK's hardware ID (hex), "none (VLEK)" when a VLEK signed (the cloud
// provider's key: chips cannot be told apart), or "" before any authentic
// evidence.
func ChipIdentity(signer, chipID string) string {
	switch {
	case signer == "VLEK":
		return "none (VLEK)"
	case chipID != "":
		return chipID
	}
	return ""
}
