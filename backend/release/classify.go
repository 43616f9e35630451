package release

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"

	"keyholder/backend/fleet"
	"keyholder/backend/release/wire"
)

// Class is the kind of event a request represents.
type Class string

// The event classes, in the order the engine reports them when several
// apply (the first is the request's class).
const (
	ClassRefused        Class = "refused"
	ClassRotation       Class = "rotation"
	ClassFirstBoot      Class = "first_boot"
	ClassMigration      Class = "migration"
	ClassRestore        Class = "restore"
	ClassPlatformChange Class = "platform_change"
	ClassRoutine        Class = "routine_boot"
)

// Classes lists the classes a policy can act on.
var Classes = []Class{ClassRoutine, ClassFirstBoot, ClassMigration, ClassRestore, ClassPlatformChange, ClassRotation}

// Action is what the console does with a class.
type Action string

// Actions, from the most to the least permissive.
const (
	ActionRelease Action = "release"
	ActionApprove Action = "approve"
	ActionDeny    Action = "deny"
)

func (a Action) strictness() int {
	switch a {
	case ActionRelease:
		return 0
	case ActionApprove:
		return 1
	}
	return 2 // deny, and anything unknown
}

// Claims is what verified evidence says about the guest, reduced to what the
// decision needs. The attestation adapter fills it.
type Claims struct {
	// Verified is the verifier's verdict; Reasons say why not.
	Verified bool          `json:"verified"`
	Reasons  []wire.Reason `json:"reasons,omitempty"`
	// Authentic is true when the report is signed by a trusted AMD chain,
	// even if it is refused for what it says (measurement, TCB, policy).
	// Only authentic evidence changes what the fleet believes about a VM.
	Authentic bool `json:"authentic"`
	// Simulated is true for evidence under the simulated AMD root.
	Simulated bool   `json:"simulated,omitempty"`
	Product   string `json:"product"`
	// Signer is the key that signed the report: VCEK or VLEK.
	Signer string `json:"signer,omitempty"`
	// ChipID is the chip's identity: the hex hardware ID of the VCEK, never
	// the report's maskable CHIP_ID; "" when a VLEK signed (no per-chip
	// identity).
	ChipID      string    `json:"chip_id"`
	Measurement string    `json:"measurement"` // hex
	ReportID    string    `json:"report_id"`   // hex: the launch's REPORT_ID
	ReportData  [64]byte  `json:"-"`
	TCB         fleet.TCB `json:"tcb"` // reported TCB
	// Guest policy bits.
	Debug          bool `json:"debug,omitempty"`
	MigrationAgent bool `json:"migration_agent,omitempty"`
	// Unreferenced: the image has no reference values yet, so only
	// authenticity and the transcript were checked. Such a launch is never
	// released without an officer; ProposedReference (reference values that
	// admit exactly this launch) becomes the image's on approval.
	Unreferenced      bool            `json:"unreferenced,omitempty"`
	ProposedReference json.RawMessage `json:"proposed_reference,omitempty"`
	// ReferenceVersion is the version of the image's reference values the
	// evidence was checked against (0: none). Collecting an approved
	// secret refuses when the image's current version is another one.
	ReferenceVersion int `json:"reference_version,omitempty"`
	// Evidence is the full decoded evidence for the officer's screens:
	// {"snp": attest.Claims, "tpm": attest.TPMState or null}.
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// Known is what the console knows about the VM and volume a request names.
type Known struct {
	VMKnown   bool
	VMRevoked bool
	// VolumeReleased: the volume asked for was released to this VM before.
	// A VM may hold several volumes (an encrypted root and data disks); a
	// volume new to the VM is the first boot of that VM/volume pair.
	VolumeReleased bool
	// Volume state.
	VolumeExists      bool
	VolumeRevoked     bool
	CurrentGeneration int
	// History.
	EverReleased    bool       // a secret was released to this VM before
	ChipApproved    bool       // this chip received a release for this VM before
	MeasurementSeen bool       // this measurement received a release for this VM before
	LastTCB         *fleet.TCB // the TCB of the last approved release
	// ReportIDOtherVM: this launch's REPORT_ID received a release for a different VM.
	ReportIDOtherVM bool
	// ReportIDEarlierLaunch: the REPORT_ID is one this VM had before its current launch.
	ReportIDEarlierLaunch bool
	// SameLaunch: the REPORT_ID is that of the VM's last released launch
	// (a heartbeat, or the same boot asking again).
	SameLaunch bool
	// EvidenceSeen: this exact evidence was decided on before.
	EvidenceSeen bool
}

// Ask is what the guest asks for.
type Ask struct {
	Purpose    wire.Purpose
	VolumeID   string
	Generation int // 0: the current one
	// Expected is the transcript hash the report must carry.
	Expected [64]byte
}

// Decision is the engine's verdict on one request.
type Decision struct {
	Class  Class  `json:"class"`
	Action Action `json:"action"`
	// Code and Message explain a deny.
	Code    wire.Code `json:"code,omitempty"`
	Message string    `json:"message,omitempty"`
	// Signals is every class that matched, the strongest reason first.
	Signals []Class `json:"signals"`
	// Approvers is how many distinct officers must approve (Action approve).
	Approvers int `json:"approvers,omitempty"`
}

func refuse(code wire.Code, format string, a ...any) Decision {
	return Decision{Class: ClassRefused, Action: ActionDeny, Code: code, Message: fmt.Sprintf(format, a...), Signals: []Class{ClassRefused}}
}

// Classify decides a request from the verified claims, what the console
// knows, and the effective policy. It is a pure function: the same inputs
// always give the same decision, and it touches nothing.
func Classify(ask Ask, c Claims, k Known, p Policy) Decision {
	// Refusals first: nothing a policy can override.
	if subtle.ConstantTimeCompare(c.ReportData[:], ask.Expected[:]) != 1 {
		return refuse(wire.CodeReportDataMismatch, "the report's REPORT_DATA does not bind this nonce, HPKE key and volume")
	}
	if c.Authentic && c.Debug {
		return refuse(wire.CodePolicyDebug, "the guest policy allows debugging")
	}
	if c.Authentic && c.MigrationAgent && !p.AllowMigrationAgent {
		return refuse(wire.CodePolicyMigration, "the guest policy allows a migration agent")
	}
	if !c.Verified {
		msg := "the evidence did not verify"
		if len(c.Reasons) > 0 {
			msg = c.Reasons[0].Message
		}
		return refuse(wire.CodeEvidenceInvalid, "%s", msg)
	}
	if k.EvidenceSeen {
		return refuse(wire.CodeEvidenceReplayed, "this evidence was presented before")
	}
	if k.VMRevoked {
		return refuse(wire.CodeVMRevoked, "the VM is revoked")
	}
	if !k.VolumeExists {
		return refuse(wire.CodeVolumeUnknown, "volume %s is unknown", ask.VolumeID)
	}
	if k.VolumeRevoked {
		return refuse(wire.CodeVolumeRevoked, "volume %s is revoked", ask.VolumeID)
	}
	if k.ReportIDOtherVM {
		return refuse(wire.CodeReportOtherVM, "the report comes from the launch of another VM")
	}
	if ask.Generation > k.CurrentGeneration {
		return refuse(wire.CodeGenerationUnknown, "volume %s has no generation %d (current %d)", ask.VolumeID, ask.Generation, k.CurrentGeneration)
	}

	var sig []Class
	if ask.Purpose == wire.PurposeRotate {
		sig = append(sig, ClassRotation)
	}
	if !k.EverReleased || !k.MeasurementSeen || !k.VolumeReleased {
		sig = append(sig, ClassFirstBoot)
	}
	if k.EverReleased && c.Signer == "VLEK" {
		// A VLEK is the cloud provider's key, the same on every chip: the
		// console cannot tell whether a new launch runs on the approved
		// chip. Only the launch it released to, or an image policy that
		// accepts this, is routine.
		if !k.SameLaunch && !p.VLEKRoutine {
			sig = append(sig, ClassMigration)
		}
	} else if k.EverReleased && !k.ChipApproved {
		sig = append(sig, ClassMigration)
	}
	if c.Unreferenced && !slices.Contains(sig, ClassFirstBoot) {
		sig = append(sig, ClassFirstBoot)
	}
	if (ask.Generation > 0 && ask.Generation < k.CurrentGeneration) || k.ReportIDEarlierLaunch {
		sig = append(sig, ClassRestore)
	}
	if k.EverReleased && k.LastTCB != nil && *k.LastTCB != c.TCB {
		sig = append(sig, ClassPlatformChange)
	}
	if len(sig) == 0 {
		sig = append(sig, ClassRoutine)
	}
	d := Decision{Class: sig[0], Action: ActionRelease, Signals: sig}
	for _, s := range sig {
		a := p.action(s)
		if a.strictness() > d.Action.strictness() {
			d.Action = a
		}
		if a == ActionApprove {
			d.Approvers = max(d.Approvers, p.approvers(s))
		}
	}
	if c.Unreferenced && d.Action == ActionRelease {
		// No approved measurement: a person decides, whatever the policy.
		d.Action, d.Approvers = ActionApprove, p.approvers(ClassFirstBoot)
	}
	switch d.Action {
	case ActionDeny:
		d.Code = wire.CodeDeniedByPolicy
		d.Message = fmt.Sprintf("the console's policy denies %s", joinClasses(sig))
		d.Approvers = 0
	case ActionRelease:
		d.Approvers = 0
	}
	return d
}

func joinClasses(cs []Class) string {
	s := ""
	for i, c := range cs {
		if i > 0 {
			s += " + "
		}
		s += string(c)
	}
	return s
}
