package app

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/quorum"
	"keyholder/backend/release"
)

// Keys serves the Keys screen: volumes, their release-secret generations,
// and the officers. No method returns key material.
type Keys struct{ *base }

// Volumes returns every encrypted volume (never key material).
func (k *Keys) Volumes(c Caller) ([]custody.Volume, error) {
	if _, err := k.session.requireOfficer(c); err != nil {
		return nil, err
	}
	vs, err := custody.ListVolumes(k.ctx, k.db)
	return vs, toError(k.log, "list volumes", err)
}

// State reports whether the console is initialised and the key service
// unlocked (it can serve releases).
func (k *Keys) State() (custody.State, error) {
	st, err := k.custody.State(k.ctx)
	return st, toError(k.log, "read key service state", err)
}

// Generations lists a volume's release-secret generations, newest first.
func (k *Keys) Generations(c Caller, volumeID string) ([]custody.Generation, error) {
	if _, err := k.session.requireOfficer(c); err != nil {
		return nil, err
	}
	gs, err := k.custody.Generations(k.ctx, volumeID)
	return gs, toError(k.log, "list generations", err)
}

// Rotate starts a rotation of the volume's release secret: generation N+1
// is made pending; the guest agent's confirmation makes it current. Needs an
// approver or admin with a recent authentication.
func (k *Keys) Rotate(c Caller, volumeID string) (int, error) {
	o, err := k.session.requireFresh(c, custody.RoleApprover, custody.RoleAdmin)
	if err != nil {
		return 0, err
	}
	gen, err := k.custody.Rotate(k.ctx, "officer:"+o.Name, volumeID)
	k.changed()
	return gen, toError(k.log, "rotate volume", err)
}

// Revoke stops every release of the volume (its secrets stay until an admin
// destroys them). Needs an approver or admin with a recent authentication.
func (k *Keys) Revoke(c Caller, volumeID, reason string) error {
	o, err := k.session.requireFresh(c, custody.RoleApprover, custody.RoleAdmin)
	if err != nil {
		return err
	}
	err = k.custody.Revoke(k.ctx, "officer:"+o.Name, volumeID, reason)
	k.changed()
	return toError(k.log, "revoke volume", err)
}

// Destroy asks to erase every release secret of a revoked volume; confirm
// must repeat the volume ID. An admin action under the two-person rule.
// Admins only, with a recent authentication.
func (k *Keys) Destroy(c Caller, volumeID, confirm string) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	a, err := k.quorum.DestroyVolume(k.ctx, by, volumeID, confirm)
	return k.outcome("destroy volume secrets", a, err)
}

// Officers lists the officers (names, roles, last login; no envelopes).
func (k *Keys) Officers(c Caller) ([]custody.Officer, error) {
	if _, err := k.session.requireOfficer(c); err != nil {
		return nil, err
	}
	os, err := k.custody.Officers(k.ctx)
	return os, toError(k.log, "list officers", err)
}

// AddOfficer asks to add an officer with their own passphrase (their
// envelope of the master key is made now; the passphrase is not kept). An
// admin action under the two-person rule. Admins only, with a recent
// authentication.
func (k *Keys) AddOfficer(c Caller, name, role, passphrase string) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	pass := []byte(passphrase)
	defer clear(pass)
	a, err := k.quorum.AddOfficer(k.ctx, by, name, custody.Role(role), pass)
	return k.outcome("add officer", a, err)
}

// RemoveOfficer asks to remove an officer (never the last admin). An admin
// action under the two-person rule; once carried out, the officer's
// sessions end. Admins only.
func (k *Keys) RemoveOfficer(c Caller, name string) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	a, err := k.quorum.RemoveOfficer(k.ctx, by, name)
	return k.outcome("remove officer", a, err)
}

// SetRole asks to change an officer's role (the last admin stays admin).
// Raising a role, or changing an admin's, is an admin action under the
// two-person rule; lowering an approver to viewer happens at once. Once
// carried out, the officer's sessions end. Admins only.
func (k *Keys) SetRole(c Caller, name, role string) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	a, err := k.quorum.SetRole(k.ctx, by, name, custody.Role(role))
	return k.outcome("change role", a, err)
}

// ChangePassphrase changes the logged-in officer's own passphrase.
func (k *Keys) ChangePassphrase(c Caller, oldPassphrase, newPassphrase string) error {
	o, err := k.session.requireOfficer(c)
	if err != nil {
		return err
	}
	old, nw := []byte(oldPassphrase), []byte(newPassphrase)
	defer clear(old)
	defer clear(nw)
	err = k.custody.ChangePassphrase(k.ctx, o.Name, old, nw)
	return toError(k.log, "change passphrase", err)
}

// Backup asks for an encrypted backup of the whole console, written to
// path on this machine (the desktop's save dialog picks it). The web
// console refuses it: there the browser's machine is not the console's;
// use BackupDownload or keyholder backup. Under the two-person rule it is
// an admin action: with one admin the file is written at once; otherwise,
// once M admins approved, the caller writes it with CollectBackupTo.
// Admins only, with a recent authentication.
func (k *Keys) Backup(c Caller, path string) (AdminOutcome, error) {
	if k.cfg.Mode != "desktop" {
		return AdminOutcome{}, &Error{Code: CodeForbidden, Message: "backups are written from the desktop console or with keyholder backup"}
	}
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	if !filepath.IsAbs(path) {
		return AdminOutcome{}, &Error{Code: CodeInvalid, Message: "choose where to save the backup"}
	}
	a, err := k.quorum.RequestBackup(k.ctx, by, release.TLSCertFile, release.TLSKeyFile)
	if err != nil || !collectable(a, by) {
		return k.outcome("ask for a backup", a, err)
	}
	info, err := k.writeBackup(by, a.ID, path)
	if err != nil {
		return AdminOutcome{}, err
	}
	a.Status = quorum.StatusDelivered
	return AdminOutcome{Action: a, Done: true, BackupInfo: &info}, nil
}

// CollectBackupTo writes the backup of approved admin action id to path on
// this machine, once, for the admin who asked (desktop only).
func (k *Keys) CollectBackupTo(c Caller, id, path string) (custody.BackupInfo, error) {
	if k.cfg.Mode != "desktop" {
		return custody.BackupInfo{}, &Error{Code: CodeForbidden, Message: "backups are written from the desktop console; download it with CollectBackup"}
	}
	by, err := k.admin(c)
	if err != nil {
		return custody.BackupInfo{}, err
	}
	if !filepath.IsAbs(path) {
		return custody.BackupInfo{}, &Error{Code: CodeInvalid, Message: "choose where to save the backup"}
	}
	return k.writeBackup(by, id, path)
}

// writeBackup collects backup action id into path (beside it, then
// renamed, so a failed write never looks like a finished backup).
func (k *Keys) writeBackup(by quorum.Actor, id, path string) (custody.BackupInfo, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return custody.BackupInfo{}, &Error{Code: CodeInvalid, Message: "cannot write there: " + err.Error()}
	}
	defer os.Remove(tmp.Name())
	info, err := k.quorum.CollectBackup(k.ctx, by, id, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	return info, toError(k.log, "write backup", err)
}

func (k *Keys) changed() {
	k.events.Emit(EventKeysChanged, nil)
	k.events.Emit(EventAuditAppended, nil)
}

// checkpoints catches up on audit checkpoints while the console runs: every
// append in this process signs its own checkpoint each N entries, but another
// process on the same data directory may append without the key (a failed
// command-line login); Services.Close signs the last one.
func (b *base) checkpoints() {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			if err := b.custody.Checkpoint(b.ctx); err != nil && b.ctx.Err() == nil {
				b.log.Warn("audit checkpoint failed", "err", err)
			}
		}
	}
}

// Close signs a final audit checkpoint and locks the key service. Call it
// at shutdown, before closing the store.
func (s *Services) Close() error {
	b := s.Session.base
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return b.custody.Close(ctx)
}
