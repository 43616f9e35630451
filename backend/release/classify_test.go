package release

import (
	"reflect"
	"testing"

	"keyholder/backend/fleet"
	"keyholder/backend/release/wire"
)

func TestClassify(t *testing.T) {
	var expected [64]byte
	expected[0] = 0xEE
	tcb := fleet.TCB{Bootloader: 3, TEE: 0, SNP: 20, Microcode: 209}
	newer := tcb
	newer.SNP = 21
	goodClaims := Claims{Verified: true, Authentic: true, ChipID: "c1", Measurement: "m1", ReportID: "r1", ReportData: expected, TCB: tcb}
	known := Known{VMKnown: true, VolumeReleased: true, VolumeExists: true, CurrentGeneration: 2,
		EverReleased: true, ChipApproved: true, MeasurementSeen: true, LastTCB: &tcb}
	ask := Ask{Purpose: wire.PurposeBoot, VolumeID: "vol_1", Generation: 2, Expected: expected}
	def := DefaultPolicy()

	type tc struct {
		name      string
		ask       func(*Ask)
		claims    func(*Claims)
		known     func(*Known)
		policy    func(*Policy)
		class     Class
		action    Action
		code      wire.Code
		signals   []Class
		approvers int
	}
	cases := []tc{
		{name: "routine boot", class: ClassRoutine, action: ActionRelease, signals: []Class{ClassRoutine}},
		{name: "routine, generation 0 means current", ask: func(a *Ask) { a.Generation = 0 }, class: ClassRoutine, action: ActionRelease, signals: []Class{ClassRoutine}},
		{name: "first boot: never released", known: func(k *Known) {
			k.VMKnown = false
			k.EverReleased = false
			k.ChipApproved = false
			k.MeasurementSeen = false
			k.LastTCB = nil
			k.VolumeReleased = false
		},
			class: ClassFirstBoot, action: ActionApprove, signals: []Class{ClassFirstBoot}, approvers: 1},
		// A VM may hold several volumes (an encrypted root and data disks);
		// a volume it never received before is the first boot of that
		// VM/volume pair: an officer decides, by the first_boot policy.
		{name: "first boot: a volume new to this VM", known: func(k *Known) { k.VolumeReleased = false },
			class: ClassFirstBoot, action: ActionApprove, signals: []Class{ClassFirstBoot}, approvers: 1},
		{name: "first boot: a volume new to this VM, on a new chip", known: func(k *Known) { k.VolumeReleased, k.ChipApproved = false, false },
			class: ClassFirstBoot, action: ActionApprove, signals: []Class{ClassFirstBoot, ClassMigration}, approvers: 1},
		{name: "a volume new to this VM is no routine even if routine boots need no one", known: func(k *Known) { k.VolumeReleased = false },
			policy: func(p *Policy) { p.Actions[ClassRoutine] = ActionRelease },
			class:  ClassFirstBoot, action: ActionApprove, signals: []Class{ClassFirstBoot}, approvers: 1},
		{name: "a volume new to this VM, but its launch was released to another VM", known: func(k *Known) { k.VolumeReleased, k.ReportIDOtherVM = false, true },
			class: ClassRefused, action: ActionDeny, code: wire.CodeReportOtherVM, signals: []Class{ClassRefused}},
		{name: "first boot: new measurement", known: func(k *Known) { k.MeasurementSeen = false }, class: ClassFirstBoot, action: ActionApprove, signals: []Class{ClassFirstBoot}, approvers: 1},
		{name: "migration", known: func(k *Known) { k.ChipApproved = false }, class: ClassMigration, action: ActionApprove, signals: []Class{ClassMigration}, approvers: 1},
		{name: "restore: older generation", ask: func(a *Ask) { a.Generation = 1 }, class: ClassRestore, action: ActionApprove, signals: []Class{ClassRestore}, approvers: 1},
		{name: "restore: earlier launch", known: func(k *Known) { k.ReportIDEarlierLaunch = true }, class: ClassRestore, action: ActionApprove, signals: []Class{ClassRestore}, approvers: 1},
		{name: "platform change", claims: func(c *Claims) { c.TCB = newer }, class: ClassPlatformChange, action: ActionApprove, signals: []Class{ClassPlatformChange}, approvers: 1},
		{name: "rotation", ask: func(a *Ask) { a.Purpose = wire.PurposeRotate }, class: ClassRotation, action: ActionApprove, signals: []Class{ClassRotation}, approvers: 1},
		{name: "migration and platform change together", known: func(k *Known) { k.ChipApproved = false }, claims: func(c *Claims) { c.TCB = newer },
			class: ClassMigration, action: ActionApprove, signals: []Class{ClassMigration, ClassPlatformChange}, approvers: 1},
		{name: "released class cannot hide an approve class", known: func(k *Known) { k.ChipApproved = false }, claims: func(c *Claims) { c.TCB = newer },
			policy: func(p *Policy) { p.Actions[ClassMigration] = ActionRelease },
			class:  ClassMigration, action: ActionApprove, signals: []Class{ClassMigration, ClassPlatformChange}, approvers: 1},
		{name: "Turin FMC update is a platform change", claims: func(c *Claims) { c.TCB.FMC = 2 }, known: func(k *Known) { t := tcb; t.FMC = 1; k.LastTCB = &t },
			class: ClassPlatformChange, action: ActionApprove, signals: []Class{ClassPlatformChange}, approvers: 1},
		{name: "VLEK: a new launch is a migration by default", claims: func(c *Claims) { c.Signer, c.ChipID = "VLEK", "" }, known: func(k *Known) { k.ChipApproved = false },
			class: ClassMigration, action: ActionApprove, signals: []Class{ClassMigration}, approvers: 1},
		{name: "VLEK: chip approval of an empty identity does not count", claims: func(c *Claims) { c.Signer, c.ChipID = "VLEK", "" },
			class: ClassMigration, action: ActionApprove, signals: []Class{ClassMigration}, approvers: 1},
		{name: "VLEK: the released launch itself is routine", claims: func(c *Claims) { c.Signer, c.ChipID = "VLEK", "" }, known: func(k *Known) { k.SameLaunch = true },
			class: ClassRoutine, action: ActionRelease, signals: []Class{ClassRoutine}},
		{name: "VLEK: routine when the image's policy says so", claims: func(c *Claims) { c.Signer, c.ChipID = "VLEK", "" }, policy: func(p *Policy) { p.VLEKRoutine = true },
			class: ClassRoutine, action: ActionRelease, signals: []Class{ClassRoutine}},
		{name: "VLEK: first boot stays a first boot", claims: func(c *Claims) { c.Signer, c.ChipID = "VLEK", "" }, known: func(k *Known) {
			k.EverReleased, k.ChipApproved, k.MeasurementSeen, k.LastTCB, k.VolumeReleased = false, false, false, nil, false
		}, class: ClassFirstBoot, action: ActionApprove, signals: []Class{ClassFirstBoot}, approvers: 1},
		{name: "unreferenced launch of a known VM", claims: func(c *Claims) { c.Unreferenced = true }, class: ClassFirstBoot, action: ActionApprove, signals: []Class{ClassFirstBoot}, approvers: 1},
		{name: "unreferenced launch even if first boots are released", claims: func(c *Claims) { c.Unreferenced = true },
			policy: func(p *Policy) { p.Actions[ClassFirstBoot] = ActionRelease; p.Actions[ClassRoutine] = ActionRelease },
			class:  ClassFirstBoot, action: ActionApprove, signals: []Class{ClassFirstBoot}, approvers: 1},
		{name: "unreferenced launch denied by policy", claims: func(c *Claims) { c.Unreferenced = true },
			policy: func(p *Policy) { p.Actions[ClassFirstBoot] = ActionDeny },
			class:  ClassFirstBoot, action: ActionDeny, code: wire.CodeDeniedByPolicy, signals: []Class{ClassFirstBoot}},
		{name: "policy releases migrations", known: func(k *Known) { k.ChipApproved = false }, policy: func(p *Policy) { p.Actions[ClassMigration] = ActionRelease },
			class: ClassMigration, action: ActionRelease, signals: []Class{ClassMigration}},
		{name: "policy denies platform changes", claims: func(c *Claims) { c.TCB = newer }, policy: func(p *Policy) { p.Actions[ClassPlatformChange] = ActionDeny },
			class: ClassPlatformChange, action: ActionDeny, code: wire.CodeDeniedByPolicy, signals: []Class{ClassPlatformChange}},
		{name: "policy asks approval for routine", policy: func(p *Policy) { p.Actions[ClassRoutine] = ActionApprove },
			class: ClassRoutine, action: ActionApprove, signals: []Class{ClassRoutine}, approvers: 1},
		{name: "two of N for restore", ask: func(a *Ask) { a.Generation = 1 }, policy: func(p *Policy) { p.Approvers = map[Class]int{ClassRestore: 2} },
			class: ClassRestore, action: ActionApprove, signals: []Class{ClassRestore}, approvers: 2},
		{name: "unknown action denies", policy: func(p *Policy) { p.Actions[ClassRoutine] = "maybe" },
			class: ClassRoutine, action: ActionDeny, code: wire.CodeDeniedByPolicy, signals: []Class{ClassRoutine}},
		// Refusals.
		{name: "bad evidence", claims: func(c *Claims) {
			c.Verified = false
			c.Reasons = []wire.Reason{{Code: "signature", Message: "bad signature"}}
		},
			class: ClassRefused, action: ActionDeny, code: wire.CodeEvidenceInvalid, signals: []Class{ClassRefused}},
		{name: "report data mismatch", claims: func(c *Claims) { c.ReportData[63] ^= 1 }, class: ClassRefused, action: ActionDeny, code: wire.CodeReportDataMismatch, signals: []Class{ClassRefused}},
		{name: "evidence seen before", known: func(k *Known) { k.EvidenceSeen = true }, class: ClassRefused, action: ActionDeny, code: wire.CodeEvidenceReplayed, signals: []Class{ClassRefused}},
		{name: "revoked vm", known: func(k *Known) { k.VMRevoked = true }, class: ClassRefused, action: ActionDeny, code: wire.CodeVMRevoked, signals: []Class{ClassRefused}},
		{name: "unknown volume", known: func(k *Known) { k.VolumeExists = false }, class: ClassRefused, action: ActionDeny, code: wire.CodeVolumeUnknown, signals: []Class{ClassRefused}},
		{name: "revoked volume", known: func(k *Known) { k.VolumeRevoked = true }, class: ClassRefused, action: ActionDeny, code: wire.CodeVolumeRevoked, signals: []Class{ClassRefused}},
		{name: "report of another vm", known: func(k *Known) { k.ReportIDOtherVM = true }, class: ClassRefused, action: ActionDeny, code: wire.CodeReportOtherVM, signals: []Class{ClassRefused}},
		{name: "debug policy", claims: func(c *Claims) { c.Debug = true }, class: ClassRefused, action: ActionDeny, code: wire.CodePolicyDebug, signals: []Class{ClassRefused}},
		{name: "debug policy even if routine is released", claims: func(c *Claims) { c.Debug = true }, policy: func(p *Policy) { p.AllowMigrationAgent = true },
			class: ClassRefused, action: ActionDeny, code: wire.CodePolicyDebug, signals: []Class{ClassRefused}},
		{name: "debug policy refused by the verifier keeps its code", claims: func(c *Claims) { c.Debug = true; c.Verified = false }, class: ClassRefused, action: ActionDeny, code: wire.CodePolicyDebug, signals: []Class{ClassRefused}},
		{name: "debug bit of forged evidence is just bad evidence", claims: func(c *Claims) { c.Debug = true; c.Verified = false; c.Authentic = false }, class: ClassRefused, action: ActionDeny, code: wire.CodeEvidenceInvalid, signals: []Class{ClassRefused}},
		{name: "migration agent", claims: func(c *Claims) { c.MigrationAgent = true }, class: ClassRefused, action: ActionDeny, code: wire.CodePolicyMigration, signals: []Class{ClassRefused}},
		{name: "migration agent allowed", claims: func(c *Claims) { c.MigrationAgent = true }, policy: func(p *Policy) { p.AllowMigrationAgent = true },
			class: ClassRoutine, action: ActionRelease, signals: []Class{ClassRoutine}},
		{name: "future generation", ask: func(a *Ask) { a.Generation = 3 }, class: ClassRefused, action: ActionDeny, code: wire.CodeGenerationUnknown, signals: []Class{ClassRefused}},
	}
	for _, c := range cases {
		a, cl, k := ask, goodClaims, known
		p := def.Override(&Policy{}) // a deep copy
		if c.ask != nil {
			c.ask(&a)
		}
		if c.claims != nil {
			c.claims(&cl)
		}
		if c.known != nil {
			c.known(&k)
		}
		if c.policy != nil {
			c.policy(&p)
		}
		d := Classify(a, cl, k, p)
		if d.Class != c.class || d.Action != c.action || d.Code != c.code || d.Approvers != c.approvers || !reflect.DeepEqual(d.Signals, c.signals) {
			t.Errorf("%s: got class=%s action=%s code=%q approvers=%d signals=%v; want %s %s %q %d %v",
				c.name, d.Class, d.Action, d.Code, d.Approvers, d.Signals, c.class, c.action, c.code, c.approvers, c.signals)
		}
		if d.Action == ActionDeny && d.Message == "" {
			t.Errorf("%s: deny without a message", c.name)
		}
	}
	// The default policy itself was not changed by any case.
	if !reflect.DeepEqual(def, DefaultPolicy()) {
		t.Fatal("a case modified the default policy")
	}
}

func TestPolicyValidateAndOverride(t *testing.T) {
	cases := []struct {
		name    string
		p       Policy
		wantErr bool
	}{
		{"default", DefaultPolicy(), false},
		{"unknown class", Policy{Actions: map[Class]Action{"coffee": ActionRelease}}, true},
		{"unknown action", Policy{Actions: map[Class]Action{ClassRoutine: "perhaps"}}, true},
		{"too many approvers", Policy{Approvers: map[Class]int{ClassRestore: 99}}, true},
		{"heartbeat too short", Policy{HeartbeatInterval: Duration(1)}, true},
		{"stale CRL refuse", Policy{StaleCRL: StaleCRLRefuse}, false},
		{"stale CRL unknown", Policy{StaleCRL: "ignore"}, true},
	}
	if DefaultPolicy().StaleCRL != StaleCRLWarn {
		t.Fatalf("default stale CRL policy %q, want warn", DefaultPolicy().StaleCRL)
	}
	if got := DefaultPolicy().Override(&Policy{StaleCRL: StaleCRLRefuse}).StaleCRL; got != StaleCRLRefuse {
		t.Fatalf("override stale CRL: %q", got)
	}
	if got := DefaultPolicy().Override(&Policy{VLEKRoutine: true}); !got.VLEKRoutine || DefaultPolicy().VLEKRoutine {
		t.Fatal("vlek_routine: default must be false, an override must set it")
	}
	for _, c := range cases {
		if err := c.p.Validate(); (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v", c.name, err)
		}
	}
	img := &Policy{Actions: map[Class]Action{ClassMigration: ActionRelease}, Approvers: map[Class]int{ClassRestore: 2}}
	eff := DefaultPolicy().Override(img)
	if eff.action(ClassMigration) != ActionRelease || eff.action(ClassRestore) != ActionApprove || eff.approvers(ClassRestore) != 2 || eff.TTL() != DefaultPolicy().TTL() {
		t.Fatalf("override: %+v", eff)
	}
}
