package app

import (
	"context"
	"testing"

	"keyholder/backend/attest"
	"keyholder/backend/quorum"
	"keyholder/backend/release"
	"keyholder/backend/store"
)

// team makes alice the first admin, then (alone, so at once) bob a second
// admin, carol an approver and vic a viewer; it returns their callers.
func quorumTeam(t *testing.T) (*Services, map[string]Caller) {
	t.Helper()
	s, _ := newSessionServices(t, "web")
	alice := setupAs(t, s, "alice", "alice's passphrase")
	st, err := s.Approvals.QuorumStatus(alice)
	if err != nil || !st.OnePersonCanDoEverything {
		t.Fatalf("one admin: %+v %v", st, err)
	}
	for _, o := range [][2]string{{"carol", "approver"}, {"vic", "viewer"}, {"bob", "admin"}} {
		out, err := s.Keys.AddOfficer(alice, o[0], o[1], o[0]+"'s passphrase")
		if err != nil || (!out.Done && o[0] != "bob") {
			t.Fatalf("add %s: %+v %v", o[0], out, err)
		}
		if o[0] == "bob" && !out.Done {
			t.Fatalf("the first admin adds the second at once: %+v", out)
		}
	}
	if st, err := s.Approvals.QuorumStatus(alice); err != nil || st.OnePersonCanDoEverything || st.Admins != 2 {
		t.Fatalf("two admins: %+v %v", st, err)
	}
	cs := map[string]Caller{"alice": alice}
	for _, n := range []string{"bob", "carol", "vic"} {
		cs[n] = loginAs(t, s, n, n+"'s passphrase")
	}
	return s, cs
}

func officerRole(t *testing.T, s *Services, c Caller, name string) string {
	t.Helper()
	os, err := s.Keys.Officers(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range os {
		if o.Name == name {
			return string(o.Role)
		}
	}
	return ""
}

// TestEachCustodyActionNeedsTwoAdmins: through the app, each action under
// the two-person rule is refused to one admin (it stays pending and takes
// no effect), cannot be approved by the same admin again nor by a
// non-admin, and is carried out when a second admin approves it.
func TestEachCustodyActionNeedsTwoAdmins(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		setup   func(s *Services, cs map[string]Caller) string
		call    func(s *Services, cs map[string]Caller, arg string) (AdminOutcome, error)
		applied func(s *Services, cs map[string]Caller, arg string) bool
	}{
		{"add officer", nil,
			func(s *Services, cs map[string]Caller, _ string) (AdminOutcome, error) {
				return s.Keys.AddOfficer(cs["alice"], "dave", "admin", "dave's passphrase")
			},
			func(s *Services, cs map[string]Caller, _ string) bool {
				return officerRole(t, s, cs["alice"], "dave") == "admin"
			}},
		{"raise a role", nil,
			func(s *Services, cs map[string]Caller, _ string) (AdminOutcome, error) {
				return s.Keys.SetRole(cs["alice"], "carol", "admin")
			},
			func(s *Services, cs map[string]Caller, _ string) bool {
				return officerRole(t, s, cs["alice"], "carol") == "admin"
			}},
		{"remove officer", nil,
			func(s *Services, cs map[string]Caller, _ string) (AdminOutcome, error) {
				return s.Keys.RemoveOfficer(cs["alice"], "vic")
			},
			func(s *Services, cs map[string]Caller, _ string) bool {
				return officerRole(t, s, cs["alice"], "vic") == ""
			}},
		{"lower an approval count",
			func(s *Services, cs map[string]Caller) string {
				out, err := s.Approvals.SetPolicy(cs["alice"], "", &release.Policy{Approvers: map[release.Class]int{release.ClassMigration: 2}})
				if err != nil || !out.Done {
					t.Fatalf("a stricter policy is set at once: %+v %v", out, err)
				}
				return ""
			},
			func(s *Services, cs map[string]Caller, _ string) (AdminOutcome, error) {
				return s.Approvals.SetPolicy(cs["alice"], "", nil)
			},
			func(s *Services, cs map[string]Caller, _ string) bool {
				p, err := s.Approvals.Policy(cs["alice"], "")
				return err == nil && p.Needs(release.ClassMigration) == 1
			}},
		{"trust reference values",
			func(s *Services, cs map[string]Caller) string {
				if _, err := s.Keys.db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_q', 'q', ?)`, store.Time(s.Keys.db.Now())); err != nil {
					t.Fatal(err)
				}
				return "img_q"
			},
			func(s *Services, cs map[string]Caller, img string) (AdminOutcome, error) {
				m := make(attest.Hex, attest.MeasurementSize)
				return s.Images.SetReference(cs["alice"], img, attest.ReferenceValues{Measurements: []attest.Hex{m}}, "by hand")
			},
			func(s *Services, cs map[string]Caller, img string) bool {
				vs, err := s.Images.References(cs["alice"], img)
				return err == nil && len(vs) == 1
			}},
		{"destroy a volume",
			func(s *Services, cs map[string]Caller) string {
				id, _, secret, err := s.Keys.custody.CreateVolume(ctx, "officer:alice", "", "data")
				if err != nil {
					t.Fatal(err)
				}
				clear(secret)
				if err := s.Keys.Revoke(cs["alice"], id, "stolen"); err != nil {
					t.Fatal(err)
				}
				return id
			},
			func(s *Services, cs map[string]Caller, id string) (AdminOutcome, error) {
				return s.Keys.Destroy(cs["alice"], id, id)
			},
			func(s *Services, cs map[string]Caller, id string) bool {
				vs, _ := s.Keys.Volumes(cs["alice"])
				return len(vs) == 1 && vs[0].Status == "destroyed"
			}},
		{"change the rule", nil,
			func(s *Services, cs map[string]Caller, _ string) (AdminOutcome, error) {
				return s.Approvals.SetQuorumRules(cs["alice"], quorum.Rules{Approvals: map[quorum.Kind]int{quorum.KindBackupExport: 1}})
			},
			func(s *Services, cs map[string]Caller, _ string) bool {
				st, err := s.Approvals.QuorumStatus(cs["alice"])
				return err == nil && st.Needed[quorum.KindBackupExport] == 1
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, cs := quorumTeam(t)
			arg := ""
			if tc.setup != nil {
				arg = tc.setup(s, cs)
			}
			out, err := tc.call(s, cs, arg)
			if err != nil || out.Done || out.Action.Status != quorum.StatusPending || tc.applied(s, cs, arg) {
				t.Fatalf("one admin: %+v %v", out, err)
			}
			pending, err := s.Approvals.AdminActions(cs["vic"], quorum.StatusPending)
			if err != nil || len(pending) != 1 || pending[0].ID != out.Action.ID || pending[0].ApprovalsNeeded != 2 || len(pending[0].Votes) != 1 {
				t.Fatalf("listed for the Approvals screen: %+v %v", pending, err)
			}
			id, hash := out.Action.ID, out.Action.Hash
			if _, err := s.Approvals.ApproveAction(cs["alice"], id, hash); code(err) != CodeConflict {
				t.Fatalf("same admin again: %v", err)
			}
			for _, who := range []string{"carol", "vic"} {
				if _, err := s.Approvals.ApproveAction(cs[who], id, hash); code(err) != CodeForbidden {
					t.Fatalf("%s approves: %v", who, err)
				}
			}
			if tc.applied(s, cs, arg) {
				t.Fatal("applied before a second admin")
			}
			done, err := s.Approvals.ApproveAction(cs["bob"], id, hash)
			if err != nil || !done.Done || !tc.applied(s, cs, arg) {
				t.Fatalf("second admin: %+v %v", done, err)
			}
		})
	}
}

// TestSecretResultsGoOnceToTheRequester: recovery shares and a backup
// download wait for the second admin, then go to the admin who asked,
// once.
func TestSecretResultsGoOnceToTheRequester(t *testing.T) {
	s, cs := quorumTeam(t)
	out, err := s.Keys.RecoveryShares(cs["alice"], 2, 3)
	if err != nil || out.Done || len(out.Shares) != 0 || out.Action.Status != quorum.StatusPending {
		t.Fatalf("shares by one admin: %+v %v", out, err)
	}
	if _, err := s.Keys.CollectShares(cs["alice"], out.Action.ID); code(err) != CodeConflict {
		t.Fatalf("collect before approval: %v", err)
	}
	ap, err := s.Approvals.ApproveAction(cs["bob"], out.Action.ID, out.Action.Hash)
	if err != nil || ap.Action.Status != quorum.StatusApproved || len(ap.Shares) != 0 {
		t.Fatalf("bob approves: %+v %v", ap, err)
	}
	if _, err := s.Keys.CollectShares(cs["bob"], out.Action.ID); code(err) != CodeForbidden {
		t.Fatalf("bob collects alice's shares: %v", err)
	}
	shares, err := s.Keys.CollectShares(cs["alice"], out.Action.ID)
	if err != nil || len(shares) != 3 {
		t.Fatalf("alice collects: %d %v", len(shares), err)
	}
	if _, err := s.Keys.CollectShares(cs["alice"], out.Action.ID); code(err) != CodeConflict {
		t.Fatalf("second collection: %v", err)
	}

	b, err := s.Keys.BackupDownload(cs["bob"])
	if err != nil || b.Backup != nil || b.Action.Status != quorum.StatusPending {
		t.Fatalf("backup by one admin: %+v %v", b.Action, err)
	}
	if _, err := s.Approvals.DenyAction(cs["carol"], b.Action.ID, "no"); code(err) != CodeForbidden {
		t.Fatalf("approver denies: %v", err)
	}
	if _, err := s.Approvals.ApproveAction(cs["alice"], b.Action.ID, b.Action.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Keys.CollectBackup(cs["alice"], b.Action.ID); code(err) != CodeForbidden {
		t.Fatalf("alice collects bob's backup: %v", err)
	}
	f, err := s.Keys.CollectBackup(cs["bob"], b.Action.ID)
	if err != nil || len(f.Data) < 1024 || f.Info.ConsoleID == "" {
		t.Fatalf("bob collects: %d bytes %v", len(f.Data), err)
	}
	if _, err := s.Keys.CollectBackup(cs["bob"], b.Action.ID); code(err) != CodeConflict {
		t.Fatalf("second download: %v", err)
	}
	// A denied action is final.
	d, err := s.Keys.AddOfficer(cs["bob"], "mallory", "admin", "mallory's passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if den, err := s.Approvals.DenyAction(cs["alice"], d.Action.ID, "who?"); err != nil || den.Status != quorum.StatusDenied {
		t.Fatalf("deny: %+v %v", den, err)
	}
	if _, err := s.Approvals.ApproveAction(cs["alice"], d.Action.ID, d.Action.Hash); code(err) != CodeConflict {
		t.Fatalf("approve after denial: %v", err)
	}
	if officerRole(t, s, cs["alice"], "mallory") != "" {
		t.Fatal("a denied officer was added")
	}
}
