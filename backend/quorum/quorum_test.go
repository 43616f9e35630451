package quorum

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"keyholder/backend/attest"
	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/release"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
	"keyholder/internal/testclock"
)

var testKDF = custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

type env struct {
	t    *testing.T
	ctx  context.Context
	db   *store.DB
	cust *custody.Service
	q    *Service
	clk  *testclock.Clock
	evs  []Event
}

// newEnv makes a console whose only officer is the admin alice.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), clk: testclock.New(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC))}
	db, err := store.Open(e.ctx, storetest.Location(t, t.TempDir()), store.Options{Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	e.cust = custody.New(db, custody.Options{KDF: testKDF, Now: e.clk.Now})
	if _, err := e.cust.Init(e.ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	e.q = New(Config{DB: db, Custody: e.cust, Now: e.clk.Now, Notify: func(ev Event) { e.evs = append(e.evs, ev) }})
	return e
}

// team adds bob (admin), carol (approver) and victor (viewer) directly.
func (e *env) team() {
	e.t.Helper()
	for _, o := range []struct {
		name string
		role custody.Role
	}{{"bob", custody.RoleAdmin}, {"carol", custody.RoleApprover}, {"victor", custody.RoleViewer}} {
		if _, err := e.cust.AddOfficer(e.ctx, "alice", o.name, o.role, []byte("passphrase of "+o.name)); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) as(name string) Actor {
	e.t.Helper()
	o, err := custody.LookupOfficer(e.ctx, e.db, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return Actor{Officer: o, AuthenticatedAt: e.clk.Now()}
}

func (e *env) role(name string) custody.Role {
	o, err := custody.LookupOfficer(e.ctx, e.db, name)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return o.Role
}

func (e *env) audited(action, subject string) int {
	e.t.Helper()
	es, err := audit.List(e.ctx, e.db, audit.Query{Search: subject, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, en := range es {
		if en.Action == action && en.Subject == subject {
			n++
		}
	}
	return n
}

func (e *env) image(id string) {
	e.t.Helper()
	if _, err := e.db.Exec(`INSERT INTO images(id, name, created_at) VALUES (?, ?, ?)`, id, id, store.Time(e.clk.Now())); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) revokedVolume() string {
	e.t.Helper()
	id, _, secret, err := e.cust.CreateVolume(e.ctx, "officer:alice", "", "data")
	if err != nil {
		e.t.Fatal(err)
	}
	clear(secret)
	if err := e.cust.Revoke(e.ctx, "officer:alice", id, "stolen"); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func volumeStatus(t *testing.T, e *env, id string) string {
	vs, err := custody.ListVolumes(e.ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.ID == id {
			return v.Status
		}
	}
	return ""
}

func migrationApprovers(t *testing.T, e *env) int {
	p, err := release.LoadPolicy(e.ctx, e.db, "")
	if err != nil {
		t.Fatal(err)
	}
	return p.Needs(release.ClassMigration)
}

var ref = attest.ReferenceValues{Measurements: []attest.Hex{bytes.Repeat([]byte{7}, attest.MeasurementSize)}}

// quorumCase is one action under the two-person rule: what alice asks, and
// how to tell whether it took effect.
type quorumCase struct {
	name    string
	setup   func(e *env)
	request func(e *env, by Actor) (Action, error)
	applied func(e *env) bool
}

func quorumCases() []quorumCase {
	var vol string
	return []quorumCase{
		{name: "add officer",
			request: func(e *env, by Actor) (Action, error) {
				return e.q.AddOfficer(e.ctx, by, "dave", custody.RoleAdmin, []byte("dave's passphrase"))
			},
			applied: func(e *env) bool { return e.role("dave") == custody.RoleAdmin }},
		{name: "raise a role",
			request: func(e *env, by Actor) (Action, error) { return e.q.SetRole(e.ctx, by, "carol", custody.RoleAdmin) },
			applied: func(e *env) bool { return e.role("carol") == custody.RoleAdmin }},
		{name: "demote an admin",
			request: func(e *env, by Actor) (Action, error) { return e.q.SetRole(e.ctx, by, "bob", custody.RoleViewer) },
			applied: func(e *env) bool { return e.role("bob") == custody.RoleViewer }},
		{name: "remove officer",
			request: func(e *env, by Actor) (Action, error) { return e.q.RemoveOfficer(e.ctx, by, "victor") },
			applied: func(e *env) bool { return e.role("victor") == "" }},
		{name: "lower an approval count",
			setup: func(e *env) {
				if err := release.SetPolicy(e.ctx, e.cust.AuditLog(), "officer:alice", "", &release.Policy{Approvers: map[release.Class]int{release.ClassMigration: 3}}); err != nil {
					e.t.Fatal(err)
				}
			},
			request: func(e *env, by Actor) (Action, error) {
				return e.q.SetPolicy(e.ctx, by, "", &release.Policy{Approvers: map[release.Class]int{release.ClassMigration: 1}})
			},
			applied: func(e *env) bool { return migrationApprovers(e.t, e) == 1 }},
		{name: "release a class without approval",
			request: func(e *env, by Actor) (Action, error) {
				return e.q.SetPolicy(e.ctx, by, "", &release.Policy{Actions: map[release.Class]release.Action{release.ClassMigration: release.ActionRelease}})
			},
			applied: func(e *env) bool { return migrationApprovers(e.t, e) == 0 }},
		{name: "trust reference values",
			setup: func(e *env) { e.image("img_q") },
			request: func(e *env, by Actor) (Action, error) {
				return e.q.SetReference(e.ctx, by, "img_q", ref, "by hand")
			},
			applied: func(e *env) bool {
				_, err := attest.NewReferences(e.db).Latest(e.ctx, "img_q")
				return err == nil
			}},
		{name: "destroy a volume",
			setup: func(e *env) { vol = e.revokedVolume() },
			request: func(e *env, by Actor) (Action, error) {
				return e.q.DestroyVolume(e.ctx, by, vol, vol)
			},
			applied: func(e *env) bool { return volumeStatus(e.t, e, vol) == "destroyed" }},
		{name: "change the rules",
			request: func(e *env, by Actor) (Action, error) {
				return e.q.SetRules(e.ctx, by, Rules{Approvals: map[Kind]int{KindBackupExport: 1}})
			},
			applied: func(e *env) bool {
				r, err := e.q.Rules(e.ctx)
				return err == nil && r.Approvals[KindBackupExport] == 1
			}},
	}
}

// TestEachActionNeedsTwoAdmins: with two admins, every action alice asks
// for stays pending (not applied) until bob approves; alice cannot approve
// it a second time; the approval that completes it is audited with both
// names.
func TestEachActionNeedsTwoAdmins(t *testing.T) {
	for _, c := range quorumCases() {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.team()
			if c.setup != nil {
				c.setup(e)
			}
			a, err := c.request(e, e.as("alice"))
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != StatusPending || a.ApprovalsNeeded != 2 || len(a.Votes) != 1 || a.Votes[0].Officer != "alice" {
				t.Fatalf("after alice's request: %+v", a)
			}
			if c.applied(e) {
				t.Fatal("applied with one admin's request")
			}
			if _, err := e.q.Approve(e.ctx, e.as("alice"), a.ID, a.Hash); !errors.Is(err, ErrAlreadyVoted) {
				t.Fatalf("alice approving her own action again: %v", err)
			}
			if c.applied(e) {
				t.Fatal("applied after alice's second vote")
			}
			for _, who := range []string{"carol", "victor"} {
				if _, err := e.q.Approve(e.ctx, e.as(who), a.ID, a.Hash); !errors.Is(err, ErrForbidden) {
					t.Fatalf("%s (not an admin) approving: %v", who, err)
				}
			}
			a, err = e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != StatusDone || len(a.Votes) != 2 || !c.applied(e) {
				t.Fatalf("after bob's approval: %+v, applied %v", a, c.applied(e))
			}
			if e.audited("admin.request", a.ID) != 1 || e.audited("admin.approve", a.ID) != 2 || e.audited("admin.execute", a.ID) != 1 {
				t.Fatalf("audit: request %d approve %d execute %d", e.audited("admin.request", a.ID), e.audited("admin.approve", a.ID), e.audited("admin.execute", a.ID))
			}
			if _, err := e.q.Approve(e.ctx, e.as("alice"), a.ID, a.Hash); !errors.Is(err, ErrNotPending) {
				t.Fatalf("approving a done action: %v", err)
			}
		})
	}
}

// TestSingleAdminActsAlone: on a console with one admin each action takes
// effect at once, and Status says that one person can do everything; a
// second admin ends that.
func TestSingleAdminActsAlone(t *testing.T) {
	for _, c := range quorumCases() {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			for _, o := range []struct {
				name string
				role custody.Role
			}{{"carol", custody.RoleApprover}, {"victor", custody.RoleViewer}, {"bob", custody.RoleApprover}} {
				if _, err := e.cust.AddOfficer(e.ctx, "alice", o.name, o.role, []byte("passphrase of "+o.name)); err != nil {
					t.Fatal(err)
				}
			}
			if c.name == "demote an admin" {
				return // bob is no admin here; demoting the last admin is refused elsewhere
			}
			st, err := e.q.Status(e.ctx)
			if err != nil || !st.OnePersonCanDoEverything || st.Admins != 1 {
				t.Fatalf("status: %+v %v", st, err)
			}
			if c.setup != nil {
				c.setup(e)
			}
			a, err := c.request(e, e.as("alice"))
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != StatusDone || a.ApprovalsNeeded != 1 || !c.applied(e) {
				t.Fatalf("single admin: %+v, applied %v", a, c.applied(e))
			}
		})
	}
	e := newEnv(t)
	if one, err := OnePersonCanDoEverything(e.ctx, e.db); err != nil || !one {
		t.Fatalf("one admin: %v %v", one, err)
	}
	a, err := e.q.AddOfficer(e.ctx, e.as("alice"), "bob", custody.RoleAdmin, []byte("bob's passphrase"))
	if err != nil || a.Status != StatusDone {
		t.Fatalf("second admin: %+v %v", a, err)
	}
	if one, err := OnePersonCanDoEverything(e.ctx, e.db); err != nil || one {
		t.Fatalf("two admins: %v %v", one, err)
	}
	// Rules of 1 for every kind make one person all-powerful again.
	all := map[Kind]int{}
	for _, k := range Kinds {
		all[k] = 1
	}
	a, err = e.q.SetRules(e.ctx, e.as("alice"), Rules{Approvals: all})
	if err != nil || a.Status != StatusPending {
		t.Fatalf("rules: %+v %v", a, err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash); err != nil {
		t.Fatal(err)
	}
	if one, err := OnePersonCanDoEverything(e.ctx, e.db); err != nil || !one {
		t.Fatalf("rules of 1: %v %v", one, err)
	}
}

// TestLooseningOnlyNeedsTheQuorum: changes that loosen nothing take effect
// at once even with two admins.
func TestLooseningOnlyNeedsTheQuorum(t *testing.T) {
	e := newEnv(t)
	e.team()
	a, err := e.q.SetRole(e.ctx, e.as("alice"), "carol", custody.RoleViewer)
	if err != nil || a.Status != StatusDone || e.role("carol") != custody.RoleViewer {
		t.Fatalf("approver to viewer: %+v %v", a, err)
	}
	a, err = e.q.SetPolicy(e.ctx, e.as("alice"), "", &release.Policy{Approvers: map[release.Class]int{release.ClassMigration: 2}})
	if err != nil || a.Status != StatusDone || migrationApprovers(t, e) != 2 {
		t.Fatalf("stricter policy: %+v %v", a, err)
	}
	// Denying a class is stricter (at once); allowing it again loosens.
	deny := &release.Policy{Approvers: map[release.Class]int{release.ClassMigration: 2}, Actions: map[release.Class]release.Action{release.ClassRestore: release.ActionDeny}}
	a, err = e.q.SetPolicy(e.ctx, e.as("alice"), "", deny)
	if err != nil || a.Status != StatusDone {
		t.Fatalf("denying restores: %+v %v", a, err)
	}
	a, err = e.q.SetPolicy(e.ctx, e.as("alice"), "", &release.Policy{Approvers: map[release.Class]int{release.ClassMigration: 2}})
	if err != nil || a.Status != StatusPending {
		t.Fatalf("allowing restores again: %+v %v", a, err)
	}
	// Back to 1 loosens: it waits.
	a, err = e.q.SetPolicy(e.ctx, e.as("alice"), "", nil)
	if err != nil || a.Status != StatusPending || migrationApprovers(t, e) != 2 {
		t.Fatalf("removing the stricter policy: %+v %v", a, err)
	}
}

// TestSecretGoesOnceToTheRequester: recovery shares and a backup wait for
// the second admin, then go to the admin who asked, once; nobody else
// receives them, and nothing secret is stored.
func TestSecretGoesOnceToTheRequester(t *testing.T) {
	e := newEnv(t)
	e.team()
	a, err := e.q.RequestRecoveryShares(e.ctx, e.as("alice"), 2, 3)
	if err != nil || a.Status != StatusPending || !a.Secret {
		t.Fatalf("request: %+v %v", a, err)
	}
	if _, err := e.q.CollectShares(e.ctx, e.as("alice"), a.ID); !errors.Is(err, ErrNotCollectable) {
		t.Fatalf("collect before the quorum: %v", err)
	}
	a, err = e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash)
	if err != nil || a.Status != StatusApproved {
		t.Fatalf("approve: %+v %v", a, err)
	}
	if _, err := e.q.CollectShares(e.ctx, e.as("bob"), a.ID); !errors.Is(err, ErrNotRequester) {
		t.Fatalf("bob collects alice's shares: %v", err)
	}
	shares, err := e.q.CollectShares(e.ctx, e.as("alice"), a.ID)
	if err != nil || len(shares) != 3 {
		t.Fatalf("alice collects: %d shares, %v", len(shares), err)
	}
	if _, err := e.q.CollectShares(e.ctx, e.as("alice"), a.ID); !errors.Is(err, ErrNotCollectable) {
		t.Fatalf("second collection: %v", err)
	}
	if got, _ := Get(e.ctx, e.db, a.ID); got.Status != StatusDelivered {
		t.Fatalf("status after delivery: %s", got.Status)
	}
	// The shares rebuild this console's key (and so were never stored):
	// no row of the action holds them.
	var n int
	e.db.QueryRow(`SELECT COUNT(*) FROM admin_actions WHERE params LIKE ? OR shown LIKE ? OR reason LIKE ?`,
		"%"+shares[0][:20]+"%", "%"+shares[0][:20]+"%", "%"+shares[0][:20]+"%").Scan(&n)
	if n != 0 {
		t.Fatal("a share is stored with the action")
	}
	if e.audited("admin.deliver", a.ID) != 1 {
		t.Fatal("delivery not audited")
	}

	b, err := e.q.RequestBackup(e.ctx, e.as("bob"))
	if err != nil || b.Status != StatusPending {
		t.Fatalf("backup request: %+v %v", b, err)
	}
	var buf bytes.Buffer
	if _, err := e.q.CollectBackup(e.ctx, e.as("bob"), b.ID, &buf); !errors.Is(err, ErrNotCollectable) || buf.Len() != 0 {
		t.Fatalf("backup before the quorum: %v (%d bytes)", err, buf.Len())
	}
	if _, err := e.q.Approve(e.ctx, e.as("alice"), b.ID, b.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.CollectBackup(e.ctx, e.as("alice"), b.ID, &buf); !errors.Is(err, ErrNotRequester) || buf.Len() != 0 {
		t.Fatalf("alice collects bob's backup: %v", err)
	}
	info, err := e.q.CollectBackup(e.ctx, e.as("bob"), b.ID, &buf)
	if err != nil || buf.Len() == 0 || info.ConsoleID == "" {
		t.Fatalf("bob collects: %+v %v", info, err)
	}
	if _, err := e.q.CollectBackup(e.ctx, e.as("bob"), b.ID, &bytes.Buffer{}); !errors.Is(err, ErrNotCollectable) {
		t.Fatalf("second backup: %v", err)
	}
}

// TestBoundToParameters: a request with other parameters is another action;
// the same parameters join the open one; an approval must carry the
// action's hash; parameters altered in the database are never carried out.
func TestBoundToParameters(t *testing.T) {
	e := newEnv(t)
	e.team()
	a, err := e.q.RequestRecoveryShares(e.ctx, e.as("alice"), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.q.RequestRecoveryShares(e.ctx, e.as("bob"), 2, 4)
	if err != nil || b.ID == a.ID || b.Hash == a.Hash || b.Status != StatusPending {
		t.Fatalf("other parameters: %+v %v", b, err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), a.ID, b.Hash); !errors.Is(err, ErrChanged) {
		t.Fatalf("approval with another action's hash: %v", err)
	}
	c, err := e.q.RequestRecoveryShares(e.ctx, e.as("bob"), 2, 3)
	if err != nil || c.ID != a.ID || c.Status != StatusApproved {
		t.Fatalf("same parameters join the open action: %+v %v", c, err)
	}

	d, err := e.q.SetRole(e.ctx, e.as("alice"), "carol", custody.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	// Someone with the database file rewrites the parameters.
	if _, err := e.db.Exec(`UPDATE admin_actions SET params = replace(params, 'carol', 'victor') WHERE id = ?`, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), d.ID, d.Hash); !errors.Is(err, ErrChanged) {
		t.Fatalf("approving altered parameters: %v", err)
	}
	if e.role("victor") != custody.RoleViewer || e.role("carol") != custody.RoleApprover {
		t.Fatal("altered parameters took effect")
	}
	// A secret action altered after its request: more shares than asked.
	e2, err := e.q.RequestRecoveryShares(e.ctx, e.as("alice"), 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`UPDATE admin_actions SET params = '{"m":2,"n":5}' WHERE id = ?`, e2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), e2.ID, e2.Hash); !errors.Is(err, ErrChanged) {
		t.Fatalf("approving altered shares: %v", err)
	}
	if shares, err := e.q.CollectShares(e.ctx, e.as("alice"), e2.ID); err == nil {
		t.Fatalf("altered action delivered %d shares", len(shares))
	}
	if Hash(KindRecoveryShares, []byte(`{"m":2,"n":3}`)) != a.Hash {
		t.Fatal("the hash is not over the canonical parameters")
	}
}

// TestExpiry: an action nobody approves in time expires (audited) and can
// no longer be approved; an approved secret nobody collects expires too.
func TestExpiry(t *testing.T) {
	e := newEnv(t)
	e.team()
	a, err := e.q.DestroyVolume(e.ctx, e.as("alice"), e.revokedVolume(), "")
	if !errors.Is(err, custody.ErrConfirmation) {
		t.Fatalf("destroy without confirmation: %+v %v", a, err)
	}
	a, err = e.q.RemoveOfficer(e.ctx, e.as("alice"), "victor")
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(DefaultTTL + time.Second)
	if _, err := e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash); !errors.Is(err, ErrExpired) {
		t.Fatalf("late approval: %v", err)
	}
	if got, _ := Get(e.ctx, e.db, a.ID); got.Status != StatusExpired || e.role("victor") != custody.RoleViewer {
		t.Fatalf("after expiry: %+v", got)
	}
	if e.audited("admin.expire", a.ID) != 1 {
		t.Fatal("expiry not audited")
	}
	// A fresh request is a new action.
	b, err := e.q.RemoveOfficer(e.ctx, e.as("alice"), "victor")
	if err != nil || b.ID == a.ID || b.Status != StatusPending {
		t.Fatalf("asking again: %+v %v", b, err)
	}
	s, err := e.q.RequestRecoveryShares(e.ctx, e.as("alice"), 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), s.ID, s.Hash); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(DefaultTTL + time.Second)
	// Collected after its expiry (no sweep ran): refused, and expired now.
	late, err := e.q.RequestRecoveryShares(e.ctx, e.as("bob"), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("alice"), late.ID, late.Hash); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(DefaultTTL + time.Second)
	if _, err := e.q.CollectShares(e.ctx, e.as("bob"), late.ID); !errors.Is(err, ErrExpired) {
		t.Fatalf("collect after expiry: %v", err)
	}
	if got, _ := Get(e.ctx, e.db, late.ID); got.Status != StatusExpired {
		t.Fatalf("late collection: %s", got.Status)
	}
	if n, err := e.q.ExpireDue(e.ctx); err != nil || n != 2 {
		t.Fatalf("expire due: %d %v", n, err)
	}
	if _, err := e.q.CollectShares(e.ctx, e.as("alice"), s.ID); !errors.Is(err, ErrNotCollectable) {
		t.Fatalf("collect after expiry: %v", err)
	}
}

// TestWhoMayAct: only admins with a recent authentication request, approve
// or deny; a denial is final and audited.
func TestWhoMayAct(t *testing.T) {
	e := newEnv(t)
	e.team()
	for _, who := range []string{"carol", "victor"} {
		if _, err := e.q.RequestRecoveryShares(e.ctx, e.as(who), 2, 3); !errors.Is(err, ErrForbidden) {
			t.Fatalf("%s requests shares: %v", who, err)
		}
	}
	if _, err := e.q.AddOfficer(e.ctx, e.as("victor"), "vic2", custody.RoleAdmin, []byte("a long passphrase")); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a viewer adds an officer: %v", err)
	}
	stale := e.as("alice")
	e.clk.Advance(10 * time.Minute)
	if _, err := e.q.RequestRecoveryShares(e.ctx, stale, 2, 3); !errors.Is(err, ErrReauthenticate) {
		t.Fatalf("stale authentication: %v", err)
	}
	// An Actor naming an officer that was removed and added again under
	// the same name is not that officer.
	ghost := e.as("bob")
	ghost.Officer.ID = "off_someoneelse"
	if _, err := e.q.RequestRecoveryShares(e.ctx, ghost, 2, 3); !errors.Is(err, ErrForbidden) {
		t.Fatalf("other officer ID: %v", err)
	}
	a, err := e.q.AddOfficer(e.ctx, e.as("alice"), "mallory", custody.RoleAdmin, []byte("mallory's passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Deny(e.ctx, e.as("carol"), a.ID, "no"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("approver denies: %v", err)
	}
	d, err := e.q.Deny(e.ctx, e.as("bob"), a.ID, "who is mallory?")
	if err != nil || d.Status != StatusDenied || !strings.Contains(d.Reason, "bob") {
		t.Fatalf("deny: %+v %v", d, err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approve after denial: %v", err)
	}
	// A carried-out action cannot be denied afterwards (the audit log would lie).
	done, err := e.q.SetRole(e.ctx, e.as("alice"), "carol", custody.RoleViewer)
	if err != nil || done.Status != StatusDone {
		t.Fatalf("lowering carol: %+v %v", done, err)
	}
	if _, err := e.q.Deny(e.ctx, e.as("bob"), done.ID, "too late"); !errors.Is(err, ErrNotPending) {
		t.Fatalf("deny a done action: %v", err)
	}
	if e.role("mallory") != "" || e.audited("admin.deny", a.ID) != 1 {
		t.Fatal("denied action took effect or was not audited")
	}
	// Listed beside release requests: the pending list holds only open actions.
	open, err := List(e.ctx, e.db, StatusPending)
	if err != nil || len(open) != 0 {
		t.Fatalf("pending: %+v %v", open, err)
	}
	if len(e.evs) == 0 {
		t.Fatal("no events")
	}
}

// TestDemotedVoterDoesNotCount: a vote counts only while its officer is
// an admin.
func TestDemotedVoterDoesNotCount(t *testing.T) {
	e := newEnv(t)
	e.team()
	if _, err := e.cust.AddOfficer(e.ctx, "alice", "dave", custody.RoleViewer, []byte("dave's passphrase")); err != nil {
		t.Fatal(err)
	}
	if err := e.cust.SetRole(e.ctx, "alice", "dave", custody.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	a, err := e.q.RequestBackup(e.ctx, e.as("alice"))
	if err != nil {
		t.Fatal(err)
	}
	// alice loses her admin role (decided by the others) before bob votes.
	if err := e.cust.SetRole(e.ctx, "bob", "alice", custody.RoleApprover); err != nil {
		t.Fatal(err)
	}
	a, err = e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash)
	if err != nil || a.Status != StatusPending {
		t.Fatalf("bob's vote with alice demoted: %+v %v", a, err)
	}
	a, err = e.q.Approve(e.ctx, e.as("dave"), a.ID, a.Hash)
	if err != nil || a.Status != StatusApproved {
		t.Fatalf("dave's vote: %+v %v", a, err)
	}
	// The result still goes to alice only, and she is no admin now.
	if _, err := e.q.CollectBackup(e.ctx, e.as("alice"), a.ID, &bytes.Buffer{}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("demoted requester collects: %v", err)
	}
}

// TestStaleTargetIsNotChanged: an approved change is carried out only on
// the officer it was asked for, as they were: a role change whose officer
// changed role meanwhile, or a removal whose officer was replaced by
// another of the same name, fails (audited) instead of doing something
// nobody approved.
func TestStaleTargetIsNotChanged(t *testing.T) {
	e := newEnv(t)
	e.team()
	raise, err := e.q.SetRole(e.ctx, e.as("alice"), "carol", custody.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	remove, err := e.q.RemoveOfficer(e.ctx, e.as("alice"), "victor")
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile: carol is made a viewer; victor is removed and a new
	// victor (an admin) is added.
	if err := e.cust.SetRole(e.ctx, "alice", "carol", custody.RoleViewer); err != nil {
		t.Fatal(err)
	}
	if err := e.cust.RemoveOfficer(e.ctx, "alice", "victor"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cust.AddOfficer(e.ctx, "alice", "victor", custody.RoleAdmin, []byte("the new victor's passphrase")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), raise.ID, raise.Hash); !errors.Is(err, ErrChanged) {
		t.Fatalf("raising a role that changed meanwhile: %v", err)
	}
	if _, err := e.q.Approve(e.ctx, e.as("bob"), remove.ID, remove.Hash); !errors.Is(err, ErrChanged) {
		t.Fatalf("removing an officer replaced meanwhile: %v", err)
	}
	if e.role("carol") != custody.RoleViewer || e.role("victor") != custody.RoleAdmin {
		t.Fatalf("carol %s, victor %s", e.role("carol"), e.role("victor"))
	}
	for _, id := range []string{raise.ID, remove.ID} {
		a, err := Get(e.ctx, e.db, id)
		if err != nil || a.Status != StatusFailed || e.audited("admin.execute", id) != 1 {
			t.Fatalf("%s: %+v %v", id, a, err)
		}
	}
}

// TestRulesApplyPerKind: M is configured per kind; a kind the rules do not
// name keeps the default of 2.
func TestRulesApplyPerKind(t *testing.T) {
	e := newEnv(t)
	e.team()
	if _, err := e.cust.AddOfficer(e.ctx, "alice", "dave", custody.RoleAdmin, []byte("dave's passphrase")); err != nil {
		t.Fatal(err)
	}
	r, err := e.q.SetRules(e.ctx, e.as("alice"), Rules{Approvals: map[Kind]int{KindBackupExport: 1, KindOfficerAdd: 3}})
	if err != nil || r.Status != StatusPending {
		t.Fatalf("rules: %+v %v", r, err)
	}
	if r, err = e.q.Approve(e.ctx, e.as("bob"), r.ID, r.Hash); err != nil || r.Status != StatusDone {
		t.Fatalf("rules approved: %+v %v", r, err)
	}
	b, err := e.q.RequestBackup(e.ctx, e.as("alice"))
	if err != nil || b.Status != StatusApproved || b.ApprovalsNeeded != 1 {
		t.Fatalf("backup under a rule of 1: %+v %v", b, err)
	}
	a, err := e.q.AddOfficer(e.ctx, e.as("alice"), "erin", custody.RoleViewer, []byte("erin's passphrase"))
	if err != nil || a.Status != StatusPending || a.ApprovalsNeeded != 3 {
		t.Fatalf("add officer under a rule of 3: %+v %v", a, err)
	}
	if a, err = e.q.Approve(e.ctx, e.as("bob"), a.ID, a.Hash); err != nil || a.Status != StatusPending || e.role("erin") != "" {
		t.Fatalf("two of three: %+v %v", a, err)
	}
	if a, err = e.q.Approve(e.ctx, e.as("dave"), a.ID, a.Hash); err != nil || a.Status != StatusDone || e.role("erin") != custody.RoleViewer {
		t.Fatalf("three of three: %+v %v", a, err)
	}
	rm, err := e.q.RemoveOfficer(e.ctx, e.as("alice"), "erin")
	if err != nil || rm.Status != StatusPending || rm.ApprovalsNeeded != DefaultApprovals {
		t.Fatalf("a kind the rules do not name: %+v %v", rm, err)
	}
}
