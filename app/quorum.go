package app

import (
	"encoding/json"
	"fmt"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/quorum"
)

// The two-person rule in the console: custody actions that could leak a
// key or weaken control (recovery shares, backups, officers and roles,
// lowered approval counts, reference values trusted by hand, volume
// destruction, the rule itself) go through backend/quorum. An admin's call
// creates the admin action (or adds their vote to an open one with the
// same parameters) and returns where it stands; the action is carried out
// when M distinct admins approved it (Approvals.ApproveAction). A secret
// result goes to the admin who asked, once (Keys.CollectShares,
// Keys.CollectBackup). On a console with one admin, everything happens at
// once, and QuorumStatus says that one person can do everything.

// EventAdminActionsChanged tells the Approvals screen that admin actions
// changed (data: quorum.Event).
const EventAdminActionsChanged = "admin-actions:changed"

// AdminOutcome is what a call under the two-person rule returns.
type AdminOutcome struct {
	// Action is the admin action as it stands (pending: waiting for other
	// admins; done: carried out; approved: a secret result waits for its
	// requester).
	Action quorum.Action `json:"action"`
	// Done is true when the change took effect, or the secret result is in
	// this answer.
	Done bool `json:"done"`
	// Shares are the recovery shares, when delivered in this answer.
	Shares []string `json:"shares,omitempty"`
	// Backup is the downloaded backup, when delivered in this answer.
	Backup *BackupFile `json:"backup,omitempty"`
	// BackupInfo describes a backup written to a file on this machine.
	BackupInfo *custody.BackupInfo `json:"backup_info,omitempty"`
}

func newQuorum(b *base) *quorum.Service {
	fresh := b.cfg.FreshAuth
	if fresh <= 0 {
		fresh = DefaultFreshAuth
	}
	return quorum.New(quorum.Config{DB: b.db, Custody: b.custody, Now: b.cfg.Now, MaxAuthAge: fresh, Notify: func(ev quorum.Event) {
		b.events.Emit(EventAdminActionsChanged, ev)
		b.events.Emit(EventAuditAppended, nil)
		if ev.Status == quorum.StatusDone {
			b.events.Emit(EventKeysChanged, nil)
		}
	}})
}

// expireAdminActions ends admin actions past their expiry (audited) while
// the console runs, so the Approvals screen does not list them as
// pending; a vote or a collection checks expiry itself too.
func (b *base) expireAdminActions() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			if _, err := b.quorum.ExpireDue(b.ctx); err != nil && b.ctx.Err() == nil {
				b.log.Warn("expiring admin actions failed", "err", err)
			}
		}
	}
}

// admin returns the caller as the quorum's actor: an admin with a recent
// authentication.
func (b *base) admin(c Caller) (quorum.Actor, error) {
	o, authAt, err := b.session.requireFreshAt(c, custody.RoleAdmin)
	if err != nil {
		return quorum.Actor{}, err
	}
	return quorum.Actor{Officer: o, AuthenticatedAt: authAt}, nil
}

// outcome turns a quorum call's result into the answer, ending the
// sessions of an officer whose role changed or who was removed.
func (b *base) outcome(op string, a quorum.Action, err error) (AdminOutcome, error) {
	if err != nil {
		return AdminOutcome{}, toError(b.log, op, err)
	}
	if a.Status == quorum.StatusDone && (a.Kind == quorum.KindOfficerRole || a.Kind == quorum.KindOfficerRemove) {
		var p struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(a.Shown, &p) == nil && p.Name != "" {
			b.session.endOfficer(p.Name)
		}
	}
	return AdminOutcome{Action: a, Done: a.Status == quorum.StatusDone}, nil
}

// AdminActions lists the admin actions with a status (pending, approved,
// done, delivered, denied, expired, failed; "" for all), newest first, each
// with its votes: the Approvals screen shows them beside release requests.
func (a *Approvals) AdminActions(c Caller, status string) ([]quorum.Action, error) {
	if _, err := a.session.requireOfficer(c); err != nil {
		return nil, err
	}
	as, err := quorum.List(a.ctx, a.db, status)
	return as, toError(a.log, "list admin actions", err)
}

// ApproveAction records the caller's approval of admin action id; hash is
// the action's hash as the caller saw it (the approval binds to those
// exact parameters). The approval that makes M distinct admins carries the
// action out. Admins only, recently authenticated; one vote per admin.
func (a *Approvals) ApproveAction(c Caller, id, hash string) (AdminOutcome, error) {
	by, err := a.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	act, err := a.quorum.Approve(a.ctx, by, id, hash)
	return a.outcome("approve admin action", act, err)
}

// DenyAction refuses admin action id for good (admins only).
func (a *Approvals) DenyAction(c Caller, id, note string) (quorum.Action, error) {
	by, err := a.admin(c)
	if err != nil {
		return quorum.Action{}, err
	}
	act, err := a.quorum.Deny(a.ctx, by, id, note)
	return act, toError(a.log, "deny admin action", err)
}

// QuorumStatus says how many admins there are, what each kind of admin
// action needs, and whether one person can do everything (the dashboard
// and Settings warn about it).
func (a *Approvals) QuorumStatus(c Caller) (quorum.Status, error) {
	if _, err := a.session.requireOfficer(c); err != nil {
		return quorum.Status{}, err
	}
	st, err := a.quorum.Status(a.ctx)
	return st, toError(a.log, "read the two-person rule", err)
}

// SetQuorumRules asks to change the two-person rule (an admin action
// itself).
func (a *Approvals) SetQuorumRules(c Caller, r quorum.Rules) (AdminOutcome, error) {
	by, err := a.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	act, err := a.quorum.SetRules(a.ctx, by, r)
	return a.outcome("change the two-person rule", act, err)
}

// collectable says whether a just-made action waits for the caller to
// collect its secret result.
func collectable(a quorum.Action, by quorum.Actor) bool {
	return a.Status == quorum.StatusApproved && a.RequestedBy == by.Officer.Name
}

// CollectShares gives the admin who asked for recovery shares (admin
// action id, approved) the shares, once.
func (k *Keys) CollectShares(c Caller, id string) ([]string, error) {
	by, err := k.admin(c)
	if err != nil {
		return nil, err
	}
	shares, err := k.quorum.CollectShares(k.ctx, by, id)
	return shares, toError(k.log, "collect recovery shares", err)
}

// CollectBackup gives the admin who asked for a backup (admin action id,
// approved) the encrypted backup for download, once.
func (k *Keys) CollectBackup(c Caller, id string) (BackupFile, error) {
	by, err := k.admin(c)
	if err != nil {
		return BackupFile{}, err
	}
	return k.collectBackup(by, id)
}

func backupName(info custody.BackupInfo) string {
	return fmt.Sprintf("keyholder-%s-%s.khbackup", info.ConsoleID, info.CreatedAt.UTC().Format("20060102-150405"))
}
