package app

import (
	"bytes"

	"keyholder/backend/custody"
	"keyholder/backend/quorum"
	"keyholder/backend/release"
)

// RecoveryShares asks for the master key split into n printable shares,
// any m of which rebuild access (`keyholder recover`). Under the
// two-person rule it is an admin action: on a console with one admin the
// shares come in this answer; otherwise the answer is the pending action,
// and once M admins approved it the caller collects the shares with
// CollectShares, once. The shares are shown once and never stored; each
// carries a checksum so a typo is caught before combining. Admins only,
// with a recent authentication; audited.
func (k *Keys) RecoveryShares(c Caller, m, n int) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	if m < 2 || n < m || n > 16 {
		return AdminOutcome{}, &Error{Code: CodeInvalid, Message: "choose between 2 and 16 shares, with a threshold of at least 2 and at most the number of shares"}
	}
	a, err := k.quorum.RequestRecoveryShares(k.ctx, by, m, n)
	if err != nil || !collectable(a, by) {
		return k.outcome("ask for recovery shares", a, err)
	}
	shares, err := k.quorum.CollectShares(k.ctx, by, a.ID)
	if err != nil {
		return AdminOutcome{}, toError(k.log, "split the master key", err)
	}
	a.Status = quorum.StatusDelivered
	return AdminOutcome{Action: a, Done: true, Shares: shares}, nil
}

// BackupFile is an encrypted backup handed to the browser for download.
type BackupFile struct {
	Name string             `json:"name"`
	Data []byte             `json:"data"` // the encrypted, integrity-protected backup
	Info custody.BackupInfo `json:"info"`
}

// BackupDownload asks for an encrypted backup of the whole console for the
// web console to download (the desktop app saves it with Backup). Under
// the two-person rule it is an admin action: with one admin the file comes
// in this answer; otherwise the caller collects it with CollectBackup once
// M admins approved. The file is encrypted and authenticated under the
// master key; restoring it needs an officer's passphrase. Admins only,
// recently authenticated.
func (k *Keys) BackupDownload(c Caller) (AdminOutcome, error) {
	by, err := k.admin(c)
	if err != nil {
		return AdminOutcome{}, err
	}
	a, err := k.quorum.RequestBackup(k.ctx, by, release.TLSCertFile, release.TLSKeyFile)
	if err != nil || !collectable(a, by) {
		return k.outcome("ask for a backup", a, err)
	}
	f, err := k.collectBackup(by, a.ID)
	if err != nil {
		return AdminOutcome{}, err
	}
	a.Status = quorum.StatusDelivered
	return AdminOutcome{Action: a, Done: true, Backup: &f}, nil
}

func (k *Keys) collectBackup(by quorum.Actor, id string) (BackupFile, error) {
	var buf bytes.Buffer
	info, err := k.quorum.CollectBackup(k.ctx, by, id, &buf)
	if err != nil {
		return BackupFile{}, toError(k.log, "write backup", err)
	}
	return BackupFile{Name: backupName(info), Data: buf.Bytes(), Info: info}, nil
}
