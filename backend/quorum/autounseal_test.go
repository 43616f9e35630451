package quorum

import (
	"errors"
	"testing"

	"keyholder/backend/custody"
	"keyholder/backend/hsm"
	"keyholder/backend/hsm/hsmtest"
)

// TestAutoUnsealUnderTheRule, on a real SoftHSM2 token: with two admins,
// setting up auto-unseal waits for the second admin, who approves the
// stored wrapping without reaching the token; a viewer can neither ask nor
// approve. A removal is bound to the setup it names: when auto-unseal is
// set up again before the removal is approved, the approval carries
// nothing out (the action fails) and the newer setup stays.
func TestAutoUnsealUnderTheRule(t *testing.T) {
	e := newEnv(t)
	e.team()
	module := hsmtest.Token(t, "kh-quorum", "9876-pin")
	tok, err := hsm.Open(hsm.Config{Module: module, TokenLabel: "kh-quorum", PIN: []byte("9876-pin")}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	info := custody.UnsealInfo{Kind: "pkcs11", TokenLabel: tok.TokenLabel(), KeyLabel: tok.KeyLabel(), Mechanism: hsm.Mechanism}
	stored := func() bool {
		t.Helper()
		_, err := e.cust.AutoUnsealInfo(e.ctx)
		if err != nil && !errors.Is(err, custody.ErrNoAutoUnseal) {
			t.Fatal(err)
		}
		return err == nil
	}

	if _, err := e.q.SetupAutoUnseal(e.ctx, e.as("victor"), tok, info); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a viewer asked for auto-unseal: %v", err)
	}
	a, err := e.q.SetupAutoUnseal(e.ctx, e.as("alice"), tok, info)
	if err != nil || a.Status != StatusPending || a.Kind != KindUnsealSetup || a.ApprovalsNeeded != 2 || stored() {
		t.Fatalf("setup by one admin: %+v %v (stored %v)", a, err, stored())
	}
	if _, err := e.q.Approve(e.ctx, e.as("victor"), a.ID, a.Hash); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a viewer approved: %v", err)
	}
	if a, err = e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash); err != nil || a.Status != StatusDone || !stored() {
		t.Fatalf("approved by bob: %+v %v", a, err)
	}
	if e.audited("custody.auto_unseal.setup", mustConsoleID(e)) != 1 {
		t.Fatal("the setup is not audited once")
	}

	// A removal asked against the first setup...
	rm, err := e.q.RemoveAutoUnseal(e.ctx, e.as("bob"))
	if err != nil || rm.Status != StatusPending || !stored() {
		t.Fatalf("removal by one admin: %+v %v", rm, err)
	}
	// ...then auto-unseal set up anew (approved by both).
	again, err := e.q.SetupAutoUnseal(e.ctx, e.as("alice"), tok, info)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), again.ID, again.Hash); err != nil {
		t.Fatal(err)
	}
	// The old removal's approval does not remove the new setup.
	if _, err := e.q.Approve(e.ctx, e.as("alice"), rm.ID, rm.Hash); !errors.Is(err, ErrChanged) {
		t.Fatalf("approving a removal of a replaced setup: %v", err)
	}
	if got, _ := Get(e.ctx, e.db, rm.ID); got.Status != StatusFailed || !stored() {
		t.Fatalf("after the stale removal: action %s, stored %v", got.Status, stored())
	}
	// A fresh removal, approved, removes it.
	rm, err = e.q.RemoveAutoUnseal(e.ctx, e.as("bob"))
	if err != nil {
		t.Fatal(err)
	}
	if rm, err = e.q.Approve(e.ctx, e.as("alice"), rm.ID, rm.Hash); err != nil || rm.Status != StatusDone || stored() {
		t.Fatalf("removal approved: %+v %v (stored %v)", rm, err, stored())
	}
	if _, err := e.q.RemoveAutoUnseal(e.ctx, e.as("bob")); !errors.Is(err, custody.ErrNoAutoUnseal) {
		t.Fatalf("removal with nothing set up: %v", err)
	}
}

func mustConsoleID(e *env) string {
	e.t.Helper()
	st, err := e.cust.State(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.ConsoleID
}
