package custody

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"keyholder/backend/audit"
	"keyholder/backend/store"
)

// Role is what an officer may do.
type Role string

// Officer roles.
const (
	RoleAdmin    Role = "admin"    // officers, policy, destroy, recovery shares; also approves
	RoleApprover Role = "approver" // approves release requests
	RoleViewer   Role = "viewer"   // reads
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleApprover || r == RoleViewer }

// CanApprove reports whether the role may approve release requests.
func (r Role) CanApprove() bool { return r == RoleAdmin || r == RoleApprover }

// Officer is a person who can unlock the console. It never carries key
// material.
type Officer struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Role           Role      `json:"role"`
	CreatedAt      time.Time `json:"created_at"`
	LastLoginAt    time.Time `json:"last_login_at"`
	FailedAttempts int       `json:"failed_attempts"`
}

// Backoff after wrong passphrases: the first freeAttempts failures cost
// nothing extra; after that each failure doubles the wait, up to maxBackoff.
// The wait is stored with the officer, so restarting the console does not
// reset it.
const (
	freeAttempts = 3
	maxBackoff   = 15 * time.Minute
)

func backoff(failures int) time.Duration {
	if failures < freeAttempts {
		return 0
	}
	n := failures - freeAttempts
	if n > 20 {
		return maxBackoff
	}
	d := time.Second << n
	if d > maxBackoff {
		d = maxBackoff
	}
	return d
}

func checkName(name string) error {
	if name == "" || len(name) > 64 || strings.TrimSpace(name) != name {
		return fmt.Errorf("%w: officer name must be 1-64 characters without surrounding spaces", ErrInvalid)
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-@ ", r) {
			return fmt.Errorf("%w: officer name may hold letters, digits, spaces and . _ - @", ErrInvalid)
		}
	}
	return nil
}

func insertOfficer(ctx context.Context, tx *sql.Tx, o Officer, master, pass []byte, p KDFParams, cid string) error {
	salt, wrapped := wrapMaster(master, pass, p, cid, o.ID)
	_, err := tx.ExecContext(ctx, `INSERT INTO officers(id, name, role, kdf_time, kdf_memory_kib, kdf_threads, salt, wrapped_master, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, o.ID, o.Name, string(o.Role), p.Time, p.MemoryKiB, p.Threads, salt, wrapped, store.Time(o.CreatedAt))
	if err != nil {
		if errors.Is(store.Classify(err), store.ErrConflict) {
			return ErrOfficerExists
		}
		return fmt.Errorf("store officer: %w", store.Classify(err))
	}
	return nil
}

type officerRow struct {
	Officer
	kdf       KDFParams
	salt      []byte
	wrapped   []byte
	nextTry   time.Time
	lastLogin string
}

const officerCols = `id, name, role, kdf_time, kdf_memory_kib, kdf_threads, salt, wrapped_master, failed_attempts, next_attempt_at, last_login_at, created_at`

func scanOfficer(sc interface{ Scan(...any) error }) (officerRow, error) {
	var r officerRow
	var role, next, created string
	err := sc.Scan(&r.ID, &r.Name, &role, &r.kdf.Time, &r.kdf.MemoryKiB, &r.kdf.Threads, &r.salt, &r.wrapped, &r.FailedAttempts, &next, &r.lastLogin, &created)
	if err != nil {
		return r, err
	}
	r.Role = Role(role)
	r.CreatedAt, _ = store.ParseTime(created)
	if next != "" {
		r.nextTry, _ = store.ParseTime(next)
	}
	if r.lastLogin != "" {
		r.LastLoginAt, _ = store.ParseTime(r.lastLogin)
	}
	return r, nil
}

// findOfficer looks an officer up by name; "" picks the only officer.
func findOfficer(ctx context.Context, q Queryer, name string) (officerRow, error) {
	var row *sql.Row
	if name == "" {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM officers`).Scan(&n); err != nil {
			return officerRow{}, fmt.Errorf("count officers: %w", store.Classify(err))
		}
		if n == 0 {
			return officerRow{}, ErrNotInitialized
		}
		if n > 1 {
			return officerRow{}, fmt.Errorf("%w: the console has %d officers; name one", ErrInvalid, n)
		}
		row = q.QueryRowContext(ctx, `SELECT `+officerCols+` FROM officers`)
	} else {
		row = q.QueryRowContext(ctx, `SELECT `+officerCols+` FROM officers WHERE name = ?`, name)
	}
	r, err := scanOfficer(row)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("officer %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read officer: %w", store.Classify(err))
	}
	return r, nil
}

// Unlock opens the key service with an officer's passphrase (name "" means
// the only officer). It is Authenticate under the name the release engine
// and the command line use.
func (s *Service) Unlock(ctx context.Context, name string, passphrase []byte) (Officer, error) {
	return s.Authenticate(ctx, name, passphrase)
}

// Authenticate checks an officer's passphrase by opening their envelope of
// the master key (the AEAD tag check is constant-time). A locked service is
// unlocked by it; an unlocked one compares the envelope's key with the held
// one in constant time. Wrong passphrases are counted per officer and
// persisted; after a few, the officer must wait (ThrottledError) before the
// next try. Every failure is audited.
func (s *Service) Authenticate(ctx context.Context, name string, passphrase []byte) (Officer, error) {
	r, err := findOfficer(ctx, s.db, name)
	if errors.Is(err, store.ErrNotFound) {
		// Same answer and about the same work as a wrong passphrase, so
		// officer names cannot be probed.
		s.withKDFSlot(ctx, func() { clear(passphraseKey(passphrase, make([]byte, saltSize), s.opts.KDF)) })
		s.log.AppendDB(ctx, audit.Entry{At: s.now(), Actor: officerActor(name), Action: "officer.auth", Decision: "deny", Reason: "unknown officer"})
		return Officer{}, ErrWrongPassphrase
	}
	if err != nil {
		return Officer{}, err
	}
	now := s.now()
	// Reserve the attempt before the KDF runs: it counts as a wrong
	// passphrase (and sets the next back-off) until it succeeds, so
	// concurrent guesses see each other and only the first few run.
	fails, err := s.reserveAttempt(ctx, &r, now)
	if err != nil {
		var te *ThrottledError
		if errors.As(err, &te) {
			s.log.AppendDB(ctx, audit.Entry{At: now, Actor: officerActor(r.Name), Action: "officer.auth", Subject: r.ID, Decision: "deny",
				Reason: fmt.Sprintf("throttled after %d wrong passphrases", r.FailedAttempts)})
		}
		return Officer{}, err
	}
	cid, err := consoleID(ctx, s.db)
	if err != nil {
		return Officer{}, err
	}
	var master []byte
	if kerr := s.withKDFSlot(ctx, func() { master, err = unwrapMaster(passphrase, r.salt, r.wrapped, r.kdf, cid, r.ID) }); kerr != nil {
		return Officer{}, kerr
	}
	if err == nil {
		var ok bool
		_, ok, err = verifyMaster(ctx, s.db, master)
		if err == nil && !ok {
			err = errUnwrap
		}
		if err != nil {
			clear(master)
		}
	}
	if err != nil {
		s.log.AppendDB(ctx, audit.Entry{At: now, Actor: officerActor(r.Name), Action: "officer.auth", Subject: r.ID, Decision: "deny",
			Reason: fmt.Sprintf("wrong passphrase (%d in a row)", fails)})
		return Officer{}, ErrWrongPassphrase
	}
	if err := s.adopt(ctx, master, cid); err != nil {
		return Officer{}, err
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE officers SET failed_attempts = 0, next_attempt_at = '', last_login_at = ? WHERE id = ?`, store.Time(now), r.ID); err != nil {
			return store.Classify(err)
		}
		_, err := s.log.Append(ctx, tx, audit.Entry{At: now, Actor: officerActor(r.Name), Action: "officer.auth", Subject: r.ID, Decision: "allow"})
		return err
	})
	if err != nil {
		return Officer{}, fmt.Errorf("record login: %w", err)
	}
	s.afterWrite(ctx)
	o := r.Officer
	o.FailedAttempts, o.LastLoginAt = 0, now
	return o, nil
}

// reserveAttempt counts an attempt for r before its passphrase check: it
// increments the officer's failed attempts and sets the back-off they
// imply in one compare-and-set on the count (re-read and retried when a
// concurrent attempt won), or returns a *ThrottledError while the officer
// must wait. It returns the attempt's number in the current run of
// failures.
func (s *Service) reserveAttempt(ctx context.Context, r *officerRow, now time.Time) (int, error) {
	for {
		if now.Before(r.nextTry) {
			return 0, &ThrottledError{Officer: r.Name, RetryAfter: r.nextTry.Sub(now)}
		}
		fails := r.FailedAttempts + 1
		next := ""
		if d := backoff(fails); d > 0 {
			next = store.Time(now.Add(d))
		}
		res, err := s.db.ExecContext(ctx, `UPDATE officers SET failed_attempts = ?, next_attempt_at = ? WHERE id = ? AND failed_attempts = ?`,
			fails, next, r.ID, r.FailedAttempts)
		if err != nil {
			return 0, fmt.Errorf("reserve a login attempt: %w", store.Classify(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, fmt.Errorf("reserve a login attempt: %w", store.Classify(err))
		} else if n == 1 {
			return fails, nil
		}
		// Another attempt changed the count first: read it again.
		if *r, err = findOfficer(ctx, s.db, r.Name); err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// Officers lists the officers by name.
func (s *Service) Officers(ctx context.Context) ([]Officer, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+officerCols+` FROM officers ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list officers: %w", store.Classify(err))
	}
	defer rows.Close()
	out := []Officer{}
	for rows.Next() {
		r, err := scanOfficer(rows)
		if err != nil {
			return nil, fmt.Errorf("list officers: %w", err)
		}
		out = append(out, r.Officer)
	}
	return out, rows.Err()
}

// Officer returns one officer by name.
func (s *Service) Officer(ctx context.Context, name string) (Officer, error) {
	r, err := findOfficer(ctx, s.db, name)
	return r.Officer, err
}

// requireRole checks inside tx that name is an officer with one of roles.
func requireRole(ctx context.Context, tx *sql.Tx, name string, roles ...Role) (officerRow, error) {
	r, err := findOfficer(ctx, tx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return r, fmt.Errorf("%w: %s is not an officer", ErrForbidden, name)
		}
		return r, err
	}
	for _, role := range roles {
		if r.Role == role {
			return r, nil
		}
	}
	return r, fmt.Errorf("%w: %s is %s", ErrForbidden, name, r.Role)
}

// AddOfficer gives a new officer their own envelope of the master key. admin
// must be an admin officer; the service must be unlocked. No secret is
// re-encrypted.
func (s *Service) AddOfficer(ctx context.Context, admin, name string, role Role, passphrase []byte) (Officer, error) {
	if err := checkName(name); err != nil {
		return Officer{}, err
	}
	if !role.Valid() {
		return Officer{}, fmt.Errorf("%w: unknown role %q", ErrInvalid, role)
	}
	if err := checkPassphrase(passphrase); err != nil {
		return Officer{}, err
	}
	o := Officer{ID: store.NewID("off"), Name: name, Role: role, CreatedAt: s.now()}
	err := s.withMaster(func(master []byte, cid string) error {
		return s.db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := requireRole(ctx, tx, admin, RoleAdmin); err != nil {
				return err
			}
			if err := insertOfficer(ctx, tx, o, master, passphrase, s.opts.KDF, cid); err != nil {
				return err
			}
			_, err := s.log.Append(ctx, tx, audit.Entry{At: o.CreatedAt, Actor: officerActor(admin), Action: "officer.add", Subject: o.ID,
				Decision: "ok", Reason: fmt.Sprintf("added %s as %s", name, role)})
			return err
		})
	})
	if err != nil {
		return Officer{}, err
	}
	s.afterWrite(ctx)
	return o, nil
}

// RemoveOfficer deletes an officer's envelope. The last admin stays.
func (s *Service) RemoveOfficer(ctx context.Context, admin, name string) error {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := requireRole(ctx, tx, admin, RoleAdmin); err != nil {
			return err
		}
		return s.RemoveOfficerTx(ctx, tx, officerActor(admin), name, s.now())
	})
	if err == nil {
		s.afterWrite(ctx)
	}
	return err
}

// SetRole changes an officer's role; the last admin stays an admin.
func (s *Service) SetRole(ctx context.Context, admin, name string, role Role) error {
	if !role.Valid() {
		return fmt.Errorf("%w: unknown role %q", ErrInvalid, role)
	}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := requireRole(ctx, tx, admin, RoleAdmin); err != nil {
			return err
		}
		return s.SetRoleTx(ctx, tx, officerActor(admin), name, role, s.now())
	})
	if err == nil {
		s.afterWrite(ctx)
	}
	return err
}

func keepAnAdmin(ctx context.Context, tx *sql.Tx, r officerRow) error {
	if r.Role != RoleAdmin {
		return nil
	}
	var admins int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM officers WHERE role = 'admin'`).Scan(&admins); err != nil {
		return fmt.Errorf("count admins: %w", store.Classify(err))
	}
	if admins <= 1 {
		return ErrLastAdmin
	}
	return nil
}

// ChangePassphrase re-wraps the officer's envelope under a new passphrase
// after checking the old one (with the same backoff as Authenticate).
func (s *Service) ChangePassphrase(ctx context.Context, name string, old, new []byte) error {
	if err := checkPassphrase(new); err != nil {
		return err
	}
	if _, err := s.Authenticate(ctx, name, old); err != nil {
		return err
	}
	return s.setPassphrase(ctx, officerActor(name), name, new, "officer.passphrase", "passphrase changed")
}

// setPassphrase replaces an officer's envelope; the service must be unlocked.
func (s *Service) setPassphrase(ctx context.Context, actor, name string, pass []byte, action, reason string) error {
	err := s.withMaster(func(master []byte, cid string) error {
		return s.db.Tx(ctx, func(tx *sql.Tx) error {
			r, err := findOfficer(ctx, tx, name)
			if err != nil {
				return err
			}
			p := s.opts.KDF
			salt, wrapped := wrapMaster(master, pass, p, cid, r.ID)
			if _, err := tx.ExecContext(ctx, `UPDATE officers SET kdf_time = ?, kdf_memory_kib = ?, kdf_threads = ?, salt = ?, wrapped_master = ?,
				failed_attempts = 0, next_attempt_at = '' WHERE id = ?`, p.Time, p.MemoryKiB, p.Threads, salt, wrapped, r.ID); err != nil {
				return fmt.Errorf("store envelope: %w", store.Classify(err))
			}
			_, err = s.log.Append(ctx, tx, audit.Entry{At: s.now(), Actor: actor, Action: action, Subject: r.ID, Decision: "ok", Reason: reason})
			return err
		})
	})
	if err == nil {
		s.afterWrite(ctx)
	}
	return err
}

// AuthenticateApprover authenticates an officer (as Authenticate) and checks
// that their role may approve release requests (approver or admin). The
// command line uses it for each approval; the UI uses its session's recent
// authentication instead.
func (s *Service) AuthenticateApprover(ctx context.Context, name string, passphrase []byte) (Officer, error) {
	o, err := s.Authenticate(ctx, name, passphrase)
	if err != nil {
		return o, err
	}
	if !o.Role.CanApprove() {
		return o, fmt.Errorf("%w: %s is %s", ErrForbidden, o.Name, o.Role)
	}
	return o, nil
}
