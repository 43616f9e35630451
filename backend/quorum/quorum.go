// Package quorum is the two-person rule for custody: admin actions that
// could leak a key or weaken control (recovery shares, backups, officers and
// roles, lowered approval counts, reference values trusted by hand, volume
// destruction, auto-unseal set up or removed, and these rules themselves)
// take effect only once M distinct admins approved them, the way
// non-routine releases need M approvers.
//
// An action is bound to its exact parameters by a hash (Hash), and every
// vote to that hash; it expires; each step (request, approval, denial,
// execution, delivery, expiry) is written to the audit log in the same
// transaction. A change takes effect inside the transaction of the vote
// that completes it. A secret result (recovery shares, a backup) is never
// stored: it is computed when the officer who asked collects it, once.
//
// M is configured per kind (Rules); by default it is 2, and never more than
// the number of admins, so a console with a single admin works (and
// Status says that one person can do everything there).
//
// Every function takes the acting officer explicitly (Actor); the officer's
// role is read again inside the transaction, so a demoted or removed admin
// neither votes nor collects.
package quorum

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/store"
)

// Kind names what an admin action does.
type Kind string

// The admin actions under the two-person rule.
const (
	KindRecoveryShares Kind = "recovery.shares"    // split the master key into recovery shares (secret result)
	KindBackupExport   Kind = "backup.export"      // write an encrypted backup (secret result)
	KindOfficerAdd     Kind = "officer.add"        // add an officer
	KindOfficerRole    Kind = "officer.role"       // raise a role, or change an admin's
	KindOfficerRemove  Kind = "officer.remove"     // remove an officer
	KindPolicy         Kind = "policy.set"         // a release policy change that lowers an approval count
	KindReference      Kind = "reference.set"      // trust reference values by hand
	KindVolumeDestroy  Kind = "volume.destroy"     // erase a revoked volume's secrets
	KindRules          Kind = "quorum.rules"       // change these rules
	KindUnsealSetup    Kind = "auto_unseal.setup"  // let the console unlock itself through a PKCS#11 token
	KindUnsealRemove   Kind = "auto_unseal.remove" // take that away: starts need an officer again
)

// Kinds lists every kind, in the order the screens show them.
var Kinds = []Kind{KindRecoveryShares, KindBackupExport, KindOfficerAdd, KindOfficerRole, KindOfficerRemove,
	KindPolicy, KindReference, KindVolumeDestroy, KindRules, KindUnsealSetup, KindUnsealRemove}

func (k Kind) valid() bool {
	for _, x := range Kinds {
		if k == x {
			return true
		}
	}
	return false
}

// Secret reports whether the kind's result is itself secret, delivered once
// to the officer who asked (Collect*). An auto-unseal setup is one too: the
// master key is wrapped by the token only when its requester collects it.
func (k Kind) Secret() bool {
	return k == KindRecoveryShares || k == KindBackupExport || k == KindUnsealSetup
}

// Action statuses.
const (
	StatusPending   = "pending"   // waiting for approvals
	StatusApproved  = "approved"  // a secret result waits for its requester
	StatusDone      = "done"      // carried out
	StatusDelivered = "delivered" // the secret result went to its requester
	StatusDenied    = "denied"    // final
	StatusExpired   = "expired"   // final
	StatusFailed    = "failed"    // approved, but carrying it out failed (Reason)
)

// Errors that callers branch on.
var (
	ErrForbidden      = errors.New("only an admin may request or decide this")
	ErrReauthenticate = errors.New("this needs a recent authentication; sign in again")
	ErrAlreadyVoted   = errors.New("this officer has approved the action already")
	ErrNotPending     = errors.New("the action is no longer waiting for a decision")
	ErrExpired        = errors.New("the action expired")
	ErrChanged        = errors.New("the action's parameters are not the ones approved")
	ErrNotRequester   = errors.New("only the officer who asked receives this result")
	ErrNotCollectable = errors.New("the result is not waiting to be collected")
	ErrInvalid        = errors.New("invalid admin action")
)

// Actor is the officer acting and when they last authenticated (their
// session's passphrase check, or the command line's).
type Actor struct {
	Officer         custody.Officer
	AuthenticatedAt time.Time
}

// Vote is one admin's approval, bound to the parameters' hash.
type Vote struct {
	Officer string    `json:"officer"`
	Hash    string    `json:"hash"`
	At      time.Time `json:"at"`
}

// Action is an admin action as the officers see it. It never carries key
// material (Shown leaves out a new officer's envelope).
type Action struct {
	ID              string          `json:"id"`
	Kind            Kind            `json:"kind"`
	Summary         string          `json:"summary"`
	Shown           json.RawMessage `json:"params"`
	Hash            string          `json:"hash"`
	RequestedBy     string          `json:"requested_by"`
	Status          string          `json:"status"`
	ApprovalsNeeded int             `json:"approvals_needed"`
	Votes           []Vote          `json:"votes"`
	Secret          bool            `json:"secret"`
	Reason          string          `json:"reason"`
	CreatedAt       time.Time       `json:"created_at"`
	ExpiresAt       time.Time       `json:"expires_at"`
}

// Event tells the UI that an action changed; Config.Notify receives it
// after the commit.
type Event struct {
	ActionID string
	Kind     Kind
	Status   string
}

// Config is what the service needs.
type Config struct {
	DB *store.DB
	// Custody wraps a new officer's envelope and computes secret results;
	// it must be unlocked for those.
	Custody *custody.Service
	// Now is the clock; nil means the database's.
	Now func() time.Time
	// MaxAuthAge is how recently an admin must have authenticated to
	// request, approve or collect; zero means 5 minutes.
	MaxAuthAge time.Duration
	// Notify is called after each committed change; nil ignores them.
	Notify func(Event)
}

// Service runs the two-person rule. It is safe for concurrent use.
type Service struct {
	db      *store.DB
	cust    *custody.Service
	now     func() time.Time
	authAge time.Duration
	notify  func(Event)
}

// New returns the service.
func New(c Config) *Service {
	s := &Service{db: c.DB, cust: c.Custody, now: c.Now, authAge: c.MaxAuthAge, notify: c.Notify}
	if s.now == nil {
		s.now = c.DB.Now
	}
	if s.authAge <= 0 {
		s.authAge = 5 * time.Minute
	}
	if s.notify == nil {
		s.notify = func(Event) {}
	}
	return s
}

// hashDomain separates action hashes from every other hash in the console.
const hashDomain = "keyholder-admin-action-v1"

// Hash is the binding of an action to its exact parameters: hex SHA-256 of
// "keyholder-admin-action-v1" 0x00 kind 0x00 params, where params is the
// canonical encoding (encoding/json of the kind's parameter struct: fields
// in declaration order, map keys sorted, no insignificant space).
func Hash(kind Kind, params []byte) string {
	h := sha256.New()
	h.Write([]byte(hashDomain))
	h.Write([]byte{0})
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(params)
	return hex.EncodeToString(h.Sum(nil))
}

func sameHash(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// admin checks in q (the caller's transaction) that by is an admin now
// (by name and ID) and authenticated recently.
func (s *Service) admin(ctx context.Context, q custody.Queryer, by Actor, now time.Time) error {
	if strings.TrimSpace(by.Officer.Name) == "" {
		return fmt.Errorf("%w: no officer named", ErrForbidden)
	}
	if by.AuthenticatedAt.IsZero() || now.Sub(by.AuthenticatedAt) > s.authAge || by.AuthenticatedAt.After(now.Add(time.Minute)) {
		return ErrReauthenticate
	}
	o, err := custody.LookupOfficer(ctx, q, by.Officer.Name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s is not an officer", ErrForbidden, by.Officer.Name)
	}
	if err != nil {
		return err
	}
	if (by.Officer.ID != "" && o.ID != by.Officer.ID) || o.Role != custody.RoleAdmin {
		return fmt.Errorf("%w: %s is %s", ErrForbidden, o.Name, o.Role)
	}
	return nil
}

func officerActor(name string) string { return "officer:" + name }
