package quorum

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/release"
	"keyholder/backend/store"
)

// The parameters of each kind. Their encoding/json form is the canonical
// encoding that Hash covers; field order matters, so append only.
type (
	sharesParams struct {
		M int `json:"m"`
		N int `json:"n"`
	}
	backupParams struct {
		Files []string `json:"files"`
	}
	addParams struct {
		Envelope custody.Envelope `json:"envelope"`
	}
	roleParams struct {
		Name string       `json:"name"`
		From custody.Role `json:"from"`
		Role custody.Role `json:"role"`
	}
	removeParams struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	}
	policyParams struct {
		ImageID string          `json:"image_id"`
		Policy  *release.Policy `json:"policy"`
		Weakens []string        `json:"weakens"`
	}
	referenceParams struct {
		ImageID string                 `json:"image_id"`
		Values  attest.ReferenceValues `json:"values"`
		Comment string                 `json:"comment"`
	}
	destroyParams struct {
		VolumeID string `json:"volume_id"`
	}
	rulesParams struct {
		Rules Rules `json:"rules"`
	}
	// unsealSetupParams names the token only: the master key is wrapped
	// at collect time (CollectAutoUnseal), after the approvals.
	unsealSetupParams struct {
		Info custody.UnsealInfo `json:"info"`
	}
	unsealRemoveParams struct {
		Info custody.UnsealInfo `json:"info"`
		// WrappedSHA256 names the stored wrapping being removed, so that
		// an approval never removes a setup made after it was asked.
		WrappedSHA256 string `json:"wrapped_sha256"`
	}
)

func wrappedDigest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// SetupAutoUnseal asks to let the console unlock itself at start through
// a PKCS#11 token (custody auto-unseal). Only the token's description is
// stored and approved (no key, and the token is not touched): once the
// admins approved it, the requester wraps the master key through that
// very token with CollectAutoUnseal. The change replaces an earlier setup.
func (s *Service) SetupAutoUnseal(ctx context.Context, by Actor, info custody.UnsealInfo) (Action, error) {
	if info.Kind == "" || info.TokenLabel == "" || info.KeyLabel == "" || info.Mechanism == "" {
		return Action{}, fmt.Errorf("%w: auto-unseal needs a token kind, token label, key label and mechanism", ErrInvalid)
	}
	summary := fmt.Sprintf("let the console unlock itself without an officer through %s key %q on token %q", info.Kind, info.KeyLabel, info.TokenLabel)
	if info.Module != "" {
		summary += fmt.Sprintf(" (library %s)", info.Module)
	}
	return s.submit(ctx, by, proposal{kind: KindUnsealSetup, params: unsealSetupParams{Info: info}, shown: info, summary: summary})
}

// ApprovedAutoUnseal returns the token description of approved auto-unseal
// setup id when by may collect it now (by asked, it is approved and not
// expired), changing nothing: callers check the token they would open
// against it before they open it (and create a key in it).
func (s *Service) ApprovedAutoUnseal(ctx context.Context, by Actor, id string) (custody.UnsealInfo, error) {
	now := s.now()
	if err := s.admin(ctx, s.db, by, now); err != nil {
		return custody.UnsealInfo{}, err
	}
	a, err := get(ctx, s.db, id)
	if err != nil {
		return custody.UnsealInfo{}, err
	}
	switch {
	case a.Kind != KindUnsealSetup || a.Status != StatusApproved:
		return custody.UnsealInfo{}, fmt.Errorf("collect %s (%s, %s): %w", id, a.Kind, a.Status, ErrNotCollectable)
	case !now.Before(a.ExpiresAt):
		return custody.UnsealInfo{}, fmt.Errorf("collect %s: %w", id, ErrExpired)
	case a.RequestedBy != by.Officer.Name:
		return custody.UnsealInfo{}, fmt.Errorf("collect %s: %w (%s asked)", id, ErrNotRequester, a.RequestedBy)
	}
	params, err := storedParams(ctx, s.db, a)
	if err != nil {
		return custody.UnsealInfo{}, err
	}
	var p unsealSetupParams
	if err := json.Unmarshal(params, &p); err != nil {
		return custody.UnsealInfo{}, fmt.Errorf("admin action %s parameters: %w", id, err)
	}
	return p.Info, nil
}

// MatchAutoUnseal reports, as an ErrChanged error, a token description
// other than the approved one.
func MatchAutoUnseal(id string, approved, given custody.UnsealInfo) error {
	if approved == given {
		return nil
	}
	return fmt.Errorf("collect %s: %w: approved %s key %q on token %q (library %q), given %s key %q on token %q (library %q)", id, ErrChanged,
		approved.Kind, approved.KeyLabel, approved.TokenLabel, approved.Module, given.Kind, given.KeyLabel, given.TokenLabel, given.Module)
}

// CollectAutoUnseal carries out approved auto-unseal setup id for the
// admin who asked, once: w must be the token described by the approved
// action (info, compared field by field), the master key is wrapped by it
// (and test-unwrapped) now and stored in the same transaction as the
// delivery, audited. A token other than the approved one is refused and
// leaves the action as it was. The service must be unlocked.
func (s *Service) CollectAutoUnseal(ctx context.Context, by Actor, id string, w custody.KeyWrapper, info custody.UnsealInfo) error {
	now := s.now()
	var expired bool
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if !s.cust.Unlocked() {
			return custody.ErrLocked
		}
		_, params, exp, err := s.claimTx(ctx, tx, by, id, KindUnsealSetup, now)
		if err != nil || exp {
			expired = exp
			return err
		}
		var p unsealSetupParams
		if err := json.Unmarshal(params, &p); err != nil {
			return fmt.Errorf("admin action %s parameters: %w", id, err)
		}
		if err := MatchAutoUnseal(id, p.Info, info); err != nil {
			return err
		}
		k, err := s.cust.PrepareAutoUnseal(w, p.Info)
		if err != nil {
			return err
		}
		return s.cust.SetAutoUnsealTx(ctx, tx, officerActor(by.Officer.Name), k, now)
	})
	if a, gerr := Get(ctx, s.db, id); gerr == nil && (err == nil || expired) {
		s.emit(a)
	}
	if err != nil {
		return err
	}
	if expired {
		return fmt.Errorf("collect %s: %w", id, ErrExpired)
	}
	return nil
}

// RemoveAutoUnseal asks to delete the token-wrapped master key: once done,
// every start waits for an officer's login. custody.ErrNoAutoUnseal when
// there is none. The console need not be unlocked.
func (s *Service) RemoveAutoUnseal(ctx context.Context, by Actor) (Action, error) {
	k, err := custody.AutoUnsealTx(ctx, s.db)
	if err != nil {
		return Action{}, err
	}
	return s.submit(ctx, by, proposal{kind: KindUnsealRemove, params: unsealRemoveParams{Info: k.Info, WrappedSHA256: wrappedDigest(k.Wrapped)}, shown: k.Info,
		summary: fmt.Sprintf("remove auto-unseal through token %q: every start waits for an officer", k.Info.TokenLabel)})
}

// RequestRecoveryShares asks for the master key split into n shares, any m
// of which rebuild it. Once approved, the requester collects them with
// CollectShares.
func (s *Service) RequestRecoveryShares(ctx context.Context, by Actor, m, n int) (Action, error) {
	if m < 2 || n < m || n > 16 {
		return Action{}, fmt.Errorf("%w: choose 2 to 16 shares with a threshold of at least 2 and at most the number of shares", ErrInvalid)
	}
	p := sharesParams{M: m, N: n}
	return s.submit(ctx, by, proposal{kind: KindRecoveryShares, params: p, shown: p,
		summary: fmt.Sprintf("split the master key into %d recovery shares, %d needed to recover", n, m)})
}

// RequestBackup asks for an encrypted backup of the console carrying files
// of the data directory beside the database (custody.WriteBackup). Once
// approved, the requester collects it with CollectBackup.
func (s *Service) RequestBackup(ctx context.Context, by Actor, files ...string) (Action, error) {
	p := backupParams{Files: append([]string{}, files...)}
	return s.submit(ctx, by, proposal{kind: KindBackupExport, params: p, shown: p, summary: "export an encrypted backup of the whole console"})
}

// AddOfficer asks for a new officer with their own envelope of the master
// key, made now (the passphrase is not kept). The service must be unlocked.
func (s *Service) AddOfficer(ctx context.Context, by Actor, name string, role custody.Role, passphrase []byte) (Action, error) {
	// Refuse a non-admin before the passphrase KDF runs for them.
	if err := s.admin(ctx, s.db, by, s.now()); err != nil {
		return Action{}, err
	}
	if _, err := custody.LookupOfficer(ctx, s.db, name); err == nil {
		return Action{}, custody.ErrOfficerExists
	} else if !errors.Is(err, store.ErrNotFound) {
		return Action{}, err
	}
	env, err := s.cust.PrepareEnvelope(name, role, passphrase)
	if err != nil {
		return Action{}, err
	}
	return s.submit(ctx, by, proposal{kind: KindOfficerAdd, params: addParams{Envelope: env},
		shown:   map[string]string{"name": name, "role": string(role)},
		summary: fmt.Sprintf("add officer %s as %s", name, role)})
}

func rank(r custody.Role) int {
	switch r {
	case custody.RoleAdmin:
		return 3
	case custody.RoleApprover:
		return 2
	case custody.RoleViewer:
		return 1
	}
	return 0
}

// SetRole asks to change an officer's role. Raising a role, or changing an
// admin's, needs the quorum; lowering an approver to viewer does not.
func (s *Service) SetRole(ctx context.Context, by Actor, name string, role custody.Role) (Action, error) {
	if !role.Valid() {
		return Action{}, fmt.Errorf("%w: unknown role %q", custody.ErrInvalid, role)
	}
	o, err := custody.LookupOfficer(ctx, s.db, name)
	if err != nil {
		return Action{}, err
	}
	if o.Role == role {
		return Action{}, fmt.Errorf("%w: %s is %s already", ErrInvalid, name, role)
	}
	p := roleParams{Name: name, From: o.Role, Role: role}
	return s.submit(ctx, by, proposal{kind: KindOfficerRole, params: p, shown: p,
		summary: fmt.Sprintf("make %s %s (now %s)", name, role, o.Role),
		alone:   o.Role != custody.RoleAdmin && rank(role) < rank(o.Role)})
}

// RemoveOfficer asks to remove an officer (never the last admin).
func (s *Service) RemoveOfficer(ctx context.Context, by Actor, name string) (Action, error) {
	o, err := custody.LookupOfficer(ctx, s.db, name)
	if err != nil {
		return Action{}, err
	}
	return s.submit(ctx, by, proposal{kind: KindOfficerRemove, params: removeParams{Name: o.Name, ID: o.ID},
		shown: map[string]string{"name": o.Name, "role": string(o.Role)}, summary: fmt.Sprintf("remove officer %s (%s)", o.Name, o.Role)})
}

// SetPolicy asks to store the console's release policy (imageID "") or an
// image's override (nil removes it). A change that loosens control
// (release.Policy.Weakens: fewer approvals for some class, a denied class
// allowed, migration agents allowed) needs the quorum; a stricter one is
// carried out at once.
func (s *Service) SetPolicy(ctx context.Context, by Actor, imageID string, p *release.Policy) (Action, error) {
	if p != nil {
		if err := p.Validate(); err != nil {
			return Action{}, err
		}
	}
	old, err := release.EffectivePolicy(ctx, s.db, imageID)
	if err != nil {
		return Action{}, err
	}
	next, err := release.EffectivePolicyAfter(ctx, s.db, imageID, p)
	if err != nil {
		return Action{}, err
	}
	weak := old.Weakens(next)
	if weak == nil {
		weak = []string{}
	}
	what := "the console's release policy"
	if imageID != "" {
		what = "the release policy of image " + imageID
	}
	summary := "change " + what
	if len(weak) > 0 {
		summary += fmt.Sprintf(" (loosens: %v)", weak)
	}
	pp := policyParams{ImageID: imageID, Policy: p, Weakens: weak}
	return s.submit(ctx, by, proposal{kind: KindPolicy, params: pp, shown: pp, summary: summary, alone: len(weak) == 0})
}

// SetReference asks to trust reference values for an image by hand.
func (s *Service) SetReference(ctx context.Context, by Actor, imageID string, rv attest.ReferenceValues, comment string) (Action, error) {
	if err := rv.Validate(); err != nil {
		return Action{}, fmt.Errorf("%w: %v", attest.ErrInvalidReference, err)
	}
	p := referenceParams{ImageID: imageID, Values: rv, Comment: comment}
	return s.submit(ctx, by, proposal{kind: KindReference, params: p, shown: p,
		summary: fmt.Sprintf("trust reference values for image %s (%d measurements)", imageID, len(rv.Measurements))})
}

// DestroyVolume asks to erase every release secret of a revoked volume;
// confirm must repeat the volume ID.
func (s *Service) DestroyVolume(ctx context.Context, by Actor, volumeID, confirm string) (Action, error) {
	if confirm != volumeID {
		return Action{}, custody.ErrConfirmation
	}
	p := destroyParams{VolumeID: volumeID}
	return s.submit(ctx, by, proposal{kind: KindVolumeDestroy, params: p, shown: p,
		summary: "destroy the release secrets of volume " + volumeID})
}

// SetRules asks to change these rules. Every change needs the quorum the
// current rules set for KindRules.
func (s *Service) SetRules(ctx context.Context, by Actor, r Rules) (Action, error) {
	if err := r.Validate(); err != nil {
		return Action{}, err
	}
	old, err := s.Rules(ctx)
	if err != nil {
		return Action{}, err
	}
	summary := "change the two-person rules"
	if old.Weakens(r) {
		summary += " (loosens them)"
	}
	p := rulesParams{Rules: r}
	return s.submit(ctx, by, proposal{kind: KindRules, params: p, shown: p, summary: summary})
}

// execute carries out an approved action in tx, audited as actor.
func (s *Service) execute(ctx context.Context, tx *sql.Tx, kind Kind, params []byte, actor string, now time.Time) error {
	dec := func(v any) error {
		if err := json.Unmarshal(params, v); err != nil {
			return fmt.Errorf("%s parameters: %w", kind, err)
		}
		return nil
	}
	switch kind {
	case KindOfficerAdd:
		var p addParams
		if err := dec(&p); err != nil {
			return err
		}
		_, err := s.cust.AddOfficerTx(ctx, tx, actor, p.Envelope, now)
		return err
	case KindOfficerRole:
		var p roleParams
		if err := dec(&p); err != nil {
			return err
		}
		o, err := custody.LookupOfficer(ctx, tx, p.Name)
		if err != nil {
			return err
		}
		if o.Role != p.From {
			return fmt.Errorf("%w: %s is %s now, not %s", ErrChanged, p.Name, o.Role, p.From)
		}
		return s.cust.SetRoleTx(ctx, tx, actor, p.Name, p.Role, now)
	case KindOfficerRemove:
		var p removeParams
		if err := dec(&p); err != nil {
			return err
		}
		o, err := custody.LookupOfficer(ctx, tx, p.Name)
		if err != nil {
			return err
		}
		if o.ID != p.ID {
			return fmt.Errorf("%w: %s is another officer now", ErrChanged, p.Name)
		}
		return s.cust.RemoveOfficerTx(ctx, tx, actor, p.Name, now)
	case KindPolicy:
		var p policyParams
		if err := dec(&p); err != nil {
			return err
		}
		return release.SetPolicyTx(ctx, s.cust.AuditLog(), tx, actor, p.ImageID, p.Policy, now)
	case KindReference:
		var p referenceParams
		if err := dec(&p); err != nil {
			return err
		}
		v, err := attest.PutReferenceTx(ctx, tx, now, p.ImageID, &p.Values, actor, p.Comment)
		if err != nil {
			return err
		}
		_, err = s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "reference.set", Subject: p.ImageID,
			Decision: "ok", Reason: fmt.Sprintf("reference values version %d (%d measurements, sha256 %s)", v.Version, len(v.Values.Measurements), v.Hash)})
		return err
	case KindVolumeDestroy:
		var p destroyParams
		if err := dec(&p); err != nil {
			return err
		}
		return s.cust.DestroyTx(ctx, tx, actor, p.VolumeID, now)
	case KindUnsealRemove:
		var p unsealRemoveParams
		if err := dec(&p); err != nil {
			return err
		}
		k, err := custody.AutoUnsealTx(ctx, tx)
		if err != nil {
			return err
		}
		if !sameHash(wrappedDigest(k.Wrapped), p.WrappedSHA256) {
			return fmt.Errorf("%w: auto-unseal was set up again since the removal was asked", ErrChanged)
		}
		return s.cust.RemoveAutoUnsealTx(ctx, tx, actor, now)
	case KindRules:
		var p rulesParams
		if err := dec(&p); err != nil {
			return err
		}
		if err := p.Rules.Validate(); err != nil {
			return err
		}
		b, _ := json.Marshal(p.Rules)
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, settingRules, string(b), store.Time(now)); err != nil {
			return fmt.Errorf("store quorum rules: %w", store.Classify(err))
		}
		_, err := s.cust.AuditLog().Append(ctx, tx, audit.Entry{At: now, Actor: actor, Action: "quorum.rules", Subject: "console", Decision: "changed", Reason: string(b)})
		return err
	}
	return fmt.Errorf("%w: %s has no effect to carry out", ErrInvalid, kind)
}
