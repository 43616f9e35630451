package app

import "keyholder/backend/audit"

// Audit serves the Audit screen: the hash-chained decision log.
type Audit struct{ *base }

// List returns audit entries matching q, newest first.
func (a *Audit) List(q audit.Query) ([]audit.Entry, error) {
	es, err := audit.List(a.ctx, a.db, q)
	return es, toError(a.log, "list audit entries", err)
}
