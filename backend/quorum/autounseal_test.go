package quorum

import (
	"errors"
	"strings"
	"testing"

	"keyholder/backend/custody"
	"keyholder/backend/hsm"
	"keyholder/backend/hsm/hsmtest"
)

// TestAutoUnsealUnderTheRule, on a real SoftHSM2 token: with two admins,
// setting up auto-unseal waits for the second admin, who approves the
// token's description without reaching the token; then the requester
// collects it (the master key is wrapped then); a viewer can neither ask
// nor approve. A removal is bound to the setup it names: when auto-unseal is
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
	info := custody.UnsealInfo{Kind: "pkcs11", TokenLabel: tok.TokenLabel(), KeyLabel: tok.KeyLabel(), Mechanism: hsm.Mechanism, Module: module}
	stored := func() bool {
		t.Helper()
		_, err := e.cust.AutoUnsealInfo(e.ctx)
		if err != nil && !errors.Is(err, custody.ErrNoAutoUnseal) {
			t.Fatal(err)
		}
		return err == nil
	}

	if _, err := e.q.SetupAutoUnseal(e.ctx, e.as("victor"), info); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a viewer asked for auto-unseal: %v", err)
	}
	a, err := e.q.SetupAutoUnseal(e.ctx, e.as("alice"), info)
	if err != nil || a.Status != StatusPending || a.Kind != KindUnsealSetup || a.ApprovalsNeeded != 2 || stored() {
		t.Fatalf("setup by one admin: %+v %v (stored %v)", a, err, stored())
	}
	if _, err := e.q.Approve(e.ctx, e.as("victor"), a.ID, a.Hash); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a viewer approved: %v", err)
	}
	if a, err = e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash); err != nil || a.Status != StatusApproved || stored() {
		t.Fatalf("approved by bob: %+v %v (stored %v)", a, err, stored())
	}
	if err := e.q.CollectAutoUnseal(e.ctx, e.as("alice"), a.ID, tok, info); err != nil || !stored() {
		t.Fatalf("collected by alice: %v (stored %v)", err, stored())
	}
	if err := e.q.CollectAutoUnseal(e.ctx, e.as("alice"), a.ID, tok, info); !errors.Is(err, ErrNotCollectable) {
		t.Fatalf("collected twice: %v", err)
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
	again, err := e.q.SetupAutoUnseal(e.ctx, e.as("alice"), info)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), again.ID, again.Hash); err != nil {
		t.Fatal(err)
	}
	if err := e.q.CollectAutoUnseal(e.ctx, e.as("alice"), again.ID, tok, info); err != nil {
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

// TestAutoUnsealSetupKeepsNoKeyBeforeApproval: asking for auto-unseal
// stores only the token's description; the master key is wrapped by the
// token only when the requester collects the approved action. So no
// wrapped copy of the master key sits in admin_actions (where the admin
// who chose the token could unwrap it with no second approval), and a
// denied request leaves no wrapped key anywhere in the database.
func TestAutoUnsealSetupKeepsNoKeyBeforeApproval(t *testing.T) {
	e := newEnv(t)
	e.team()
	module := hsmtest.Token(t, "kh-nokey", "2468-pin")
	tok, err := hsm.Open(hsm.Config{Module: module, TokenLabel: "kh-nokey", PIN: []byte("2468-pin")}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	info := custody.UnsealInfo{Kind: "pkcs11", TokenLabel: tok.TokenLabel(), KeyLabel: tok.KeyLabel(), Mechanism: hsm.Mechanism, Module: module}
	// wrappedAnywhere: rows that hold a token wrapping of the master key,
	// or an action whose parameters carry one.
	wrappedAnywhere := func() int {
		t.Helper()
		var n, m int
		if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM wrapped_keys WHERE name = 'auto-unseal'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := e.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM admin_actions WHERE params LIKE '%wrapped"%'`).Scan(&m); err != nil {
			t.Fatal(err)
		}
		return n + m
	}

	a, err := e.q.SetupAutoUnseal(e.ctx, e.as("alice"), info)
	if err != nil || a.Status != StatusPending {
		t.Fatalf("setup by one admin: %+v %v", a, err)
	}
	var params string
	if err := e.db.QueryRowContext(e.ctx, `SELECT params FROM admin_actions WHERE id = ?`, a.ID).Scan(&params); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(params, "wrapped") || wrappedAnywhere() != 0 {
		t.Fatalf("a pending setup stores a wrapped master key: %s", params)
	}
	if _, err := e.q.Deny(e.ctx, e.as("bob"), a.ID, "not that token"); err != nil {
		t.Fatal(err)
	}
	if n := wrappedAnywhere(); n != 0 {
		t.Fatalf("a denied setup left %d wrapped master keys in the database", n)
	}
	if err := e.q.CollectAutoUnseal(e.ctx, e.as("alice"), a.ID, tok, info); !errors.Is(err, ErrNotCollectable) || wrappedAnywhere() != 0 {
		t.Fatalf("collecting a denied setup: %v", err)
	}

	// Approved: only the requester collects it, only with the approved
	// token, and only then is the master key wrapped and stored.
	a, err = e.q.SetupAutoUnseal(e.ctx, e.as("alice"), info)
	if err != nil {
		t.Fatal(err)
	}
	if a, err = e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash); err != nil || a.Status != StatusApproved || wrappedAnywhere() != 0 {
		t.Fatalf("approved: %+v %v (%d wrapped keys)", a, err, wrappedAnywhere())
	}
	if err := e.q.CollectAutoUnseal(e.ctx, e.as("bob"), a.ID, tok, info); !errors.Is(err, ErrNotRequester) || wrappedAnywhere() != 0 {
		t.Fatalf("collected by bob, who did not ask: %v", err)
	}
	for _, other := range []custody.UnsealInfo{
		{Kind: info.Kind, TokenLabel: "attacker-token", KeyLabel: info.KeyLabel, Mechanism: info.Mechanism, Module: info.Module},
		{Kind: info.Kind, TokenLabel: info.TokenLabel, KeyLabel: "other-key", Mechanism: info.Mechanism, Module: info.Module},
		{Kind: info.Kind, TokenLabel: info.TokenLabel, KeyLabel: info.KeyLabel, Mechanism: info.Mechanism, Module: "/elsewhere/libsofthsm2.so"},
	} {
		if err := e.q.CollectAutoUnseal(e.ctx, e.as("alice"), a.ID, tok, other); !errors.Is(err, ErrChanged) || wrappedAnywhere() != 0 {
			t.Fatalf("collected with another token %+v: %v", other, err)
		}
	}
	if err := e.q.CollectAutoUnseal(e.ctx, e.as("alice"), a.ID, tok, info); err != nil {
		t.Fatal(err)
	}
	if n := wrappedAnywhere(); n != 1 {
		t.Fatalf("after collection: %d wrapped keys, want the stored one", n)
	}
	if got, _ := Get(e.ctx, e.db, a.ID); got.Status != StatusDelivered {
		t.Fatalf("collected action is %s", got.Status)
	}
	if e.audited("custody.auto_unseal.setup", mustConsoleID(e)) != 1 {
		t.Fatal("the setup is not audited once")
	}
}
