package app

import (
	"bytes"
	"fmt"

	"keyholder/backend/custody"
	"keyholder/backend/release"
)

// RecoveryShares splits the master key into n printable shares, any m of
// which rebuild access (`keyholder recover`). The shares are shown once and
// never stored; each carries a checksum so a typo is caught before
// combining. Admins only, with a recent authentication; audited.
func (k *Keys) RecoveryShares(c Caller, m, n int) ([]string, error) {
	o, err := k.session.requireFresh(c, custody.RoleAdmin)
	if err != nil {
		return nil, err
	}
	if m < 2 || n < m || n > 16 {
		return nil, &Error{Code: CodeInvalid, Message: "choose between 2 and 16 shares, with a threshold of at least 2 and at most the number of shares"}
	}
	shares, err := k.custody.SplitRecovery(k.ctx, o.Name, m, n)
	k.events.Emit(EventAuditAppended, nil)
	return shares, toError(k.log, "split the master key", err)
}

// BackupFile is an encrypted backup handed to the browser for download.
type BackupFile struct {
	Name string             `json:"name"`
	Data []byte             `json:"data"` // the encrypted, integrity-protected backup
	Info custody.BackupInfo `json:"info"`
}

// BackupDownload writes an encrypted backup of the whole console into memory
// for the web console to download (the desktop app saves it with Backup).
// The file is encrypted and authenticated under the master key; restoring
// it needs an officer's passphrase. Admins only, recently authenticated.
func (k *Keys) BackupDownload(c Caller) (BackupFile, error) {
	o, err := k.session.requireFresh(c, custody.RoleAdmin)
	if err != nil {
		return BackupFile{}, err
	}
	var buf bytes.Buffer
	info, err := k.custody.WriteBackup(k.ctx, "officer:"+o.Name, &buf, release.TLSCertFile, release.TLSKeyFile)
	k.events.Emit(EventAuditAppended, nil)
	if err != nil {
		return BackupFile{}, toError(k.log, "write backup", err)
	}
	name := fmt.Sprintf("keyholder-%s-%s.khbackup", info.ConsoleID, info.CreatedAt.UTC().Format("20060102-150405"))
	return BackupFile{Name: name, Data: buf.Bytes(), Info: info}, nil
}
