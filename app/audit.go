package app

import (
	"bytes"
	"errors"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
)

// Audit serves the Audit screen: the hash-chained decision log.
type Audit struct{ *base }

// List returns audit entries matching q, newest first.
func (a *Audit) List(c Caller, q audit.Query) ([]audit.Entry, error) {
	if _, err := a.session.requireOfficer(c); err != nil {
		return nil, err
	}
	es, err := audit.List(a.ctx, a.db, q)
	return es, toError(a.log, "list audit entries", err)
}

// watchAudit emits EventAuditAppended when the log grew, whoever appended:
// this console's services, its release engine, a command or another
// replica on the same database. It compares the newest sequence number
// every interval (a primary-key lookup), so a burst of appends is one
// event.
func (b *base) watchAudit(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, _, err := audit.Head(b.ctx, b.db)
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		seq, _, herr := audit.Head(b.ctx, b.db)
		if herr != nil {
			if b.ctx.Err() == nil && err == nil {
				b.log.Warn("watch the audit log", "err", herr)
			}
			err = herr
			continue
		}
		err = nil
		if seq != last {
			last = seq
			b.events.Emit(EventAuditAppended, map[string]int64{"seq": seq})
		}
	}
}

// VerifyResult is the outcome of checking the whole audit log.
type VerifyResult struct {
	OK     bool         `json:"ok"`
	Report audit.Report `json:"report"`
	// FirstBad is the first entry that does not verify (0 when OK).
	FirstBad int64  `json:"first_bad"`
	Problem  string `json:"problem"`
	// KeyAuthenticated is true when the checkpoint key came from its wrapped
	// private half (the key service is unlocked), not only from the database.
	KeyAuthenticated bool `json:"key_authenticated"`
}

// Verify checks every entry's hash and link and every signed checkpoint.
func (a *Audit) Verify(c Caller) (VerifyResult, error) {
	if _, err := a.session.requireOfficer(c); err != nil {
		return VerifyResult{}, err
	}
	pub, authentic, err := a.custody.AuditPublicKey(a.ctx)
	if errors.Is(err, custody.ErrNotInitialized) {
		err = nil // no key yet, so no checkpoints to check
	}
	if err != nil {
		return VerifyResult{}, toError(a.log, "verify the audit log", err)
	}
	rep, err := audit.Verify(a.ctx, a.db, pub)
	res := VerifyResult{OK: err == nil, Report: rep, KeyAuthenticated: authentic}
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		res.FirstBad, res.Problem = ve.Seq, ve.Problem
		return res, nil
	}
	return res, toError(a.log, "verify the audit log", err)
}

// Export returns the whole log as JSON lines, oldest first (for a download).
func (a *Audit) Export(c Caller) (string, error) {
	if _, err := a.session.requireOfficer(c); err != nil {
		return "", err
	}
	var b bytes.Buffer
	_, err := audit.Export(a.ctx, a.db, &b)
	return b.String(), toError(a.log, "export the audit log", err)
}
