package attest

// KeyTables is how many signing keys of v's chain cache have a p384 table.
func (v *Verifier) KeyTables() int64 { return v.chains.tables.Load() }

// FillKeyTableBudget makes the next keys go without a table, as when a
// fleet has more chips than maxKeyTables.
func (v *Verifier) FillKeyTableBudget() { v.chains.tables.Store(maxKeyTables) }

// ClearChains empties the chain cache, as a CRL reload does.
func (v *Verifier) ClearChains() { v.chains.clear() }

// VerifyReportCached runs the warm report-signature check of every cached
// chain on raw, one error per chain.
func (v *Verifier) VerifyReportCached(raw []byte) []error {
	v.chains.mu.RLock()
	defer v.chains.mu.RUnlock()
	var errs []error
	for _, e := range v.chains.m {
		errs = append(errs, e.verifyReport(raw))
	}
	return errs
}
