package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Policy says what the console does with each event class. The console has
// one default policy; an image may override parts of it.
type Policy struct {
	// Actions maps a class to release, approve or deny. A class missing
	// here takes DefaultPolicy's action; an unknown action denies.
	Actions map[Class]Action `json:"actions"`
	// Approvers maps a class to the number of distinct officers that must
	// approve it (M of N); missing or < 1 means 1.
	Approvers map[Class]int `json:"approvers,omitempty"`
	// AllowMigrationAgent lets guests whose policy permits a migration agent
	// through (they are refused otherwise).
	AllowMigrationAgent bool `json:"allow_migration_agent,omitempty"`
	// VLEKRoutine lets a new launch of a VM whose reports a VLEK signs be
	// a routine boot. A VLEK is the cloud provider's key, not the chip's:
	// the console cannot tell one chip from another, so by default (false)
	// every new launch with VLEK evidence is treated as a migration.
	VLEKRoutine bool `json:"vlek_routine,omitempty"`
	// ApprovalTTL is how long a pending request waits for its approvals, and
	// how long an approved one waits for its guest; zero means 15 minutes.
	ApprovalTTL Duration `json:"approval_ttl,omitempty"`
	// StaleCRL is what a release or heartbeat does when revocation cannot
	// be checked (the certificate cache has no CRL younger than 30 days for
	// the product): "warn" (the default, "" means warn) releases and the
	// evidence carries a warning; "refuse" refuses the evidence.
	StaleCRL string `json:"stale_crl,omitempty"`
	// HeartbeatInterval is how often guests send fresh evidence; a guest is
	// stale after three missed intervals. Zero means 60 s.
	HeartbeatInterval Duration `json:"heartbeat_interval,omitempty"`
}

// Stale-CRL policies (Policy.StaleCRL).
const (
	StaleCRLWarn   = "warn"
	StaleCRLRefuse = "refuse"
)

// DefaultPolicy is the console's policy until an officer changes it.
func DefaultPolicy() Policy {
	return Policy{
		Actions: map[Class]Action{
			ClassRoutine:        ActionRelease,
			ClassFirstBoot:      ActionApprove,
			ClassMigration:      ActionApprove,
			ClassRestore:        ActionApprove,
			ClassPlatformChange: ActionApprove,
			ClassRotation:       ActionApprove,
		},
		ApprovalTTL:       Duration(15 * time.Minute),
		HeartbeatInterval: Duration(60 * time.Second),
		StaleCRL:          StaleCRLWarn,
	}
}

func (p Policy) action(c Class) Action {
	if a, ok := p.Actions[c]; ok {
		if a != ActionRelease && a != ActionApprove {
			return ActionDeny // deny, and anything unknown
		}
		return a
	}
	if a, ok := DefaultPolicy().Actions[c]; ok {
		return a
	}
	return ActionDeny
}

func (p Policy) approvers(c Class) int {
	if n := p.Approvers[c]; n > 1 {
		return n
	}
	return 1
}

// TTL is the effective approval lifetime.
func (p Policy) TTL() time.Duration {
	if p.ApprovalTTL <= 0 {
		return 15 * time.Minute
	}
	return time.Duration(p.ApprovalTTL)
}

// Heartbeat is the effective heartbeat interval.
func (p Policy) Heartbeat() time.Duration {
	if p.HeartbeatInterval <= 0 {
		return 60 * time.Second
	}
	return time.Duration(p.HeartbeatInterval)
}

// Override lays an image's policy over the console default: its actions and
// approver counts replace the default's class by class, and its other fields
// replace the default's when set.
func (p Policy) Override(img *Policy) Policy {
	if img == nil {
		return p
	}
	out := p
	out.Actions = map[Class]Action{}
	out.Approvers = map[Class]int{}
	for k, v := range p.Actions {
		out.Actions[k] = v
	}
	for k, v := range p.Approvers {
		out.Approvers[k] = v
	}
	for k, v := range img.Actions {
		out.Actions[k] = v
	}
	for k, v := range img.Approvers {
		out.Approvers[k] = v
	}
	if img.AllowMigrationAgent {
		out.AllowMigrationAgent = true
	}
	if img.VLEKRoutine {
		out.VLEKRoutine = true
	}
	if img.ApprovalTTL > 0 {
		out.ApprovalTTL = img.ApprovalTTL
	}
	if img.StaleCRL != "" {
		out.StaleCRL = img.StaleCRL
	}
	if img.HeartbeatInterval > 0 {
		out.HeartbeatInterval = img.HeartbeatInterval
	}
	return out
}

// Needs is how many officers must approve class c under p: 0 when the
// policy releases it without one, -1 when it denies it.
func (p Policy) Needs(c Class) int {
	switch p.action(c) {
	case ActionRelease:
		return 0
	case ActionApprove:
		return p.approvers(c)
	}
	return -1
}

// Weakens lists how next (an effective policy) would loosen control
// compared with p: a class released with fewer approvals than before (a
// denied class allowed at all, an approved one released automatically, an
// approver count lowered), or migration agents allowed. Nil means next is
// as strict as p or stricter.
func (p Policy) Weakens(next Policy) []string {
	var out []string
	for _, c := range Classes {
		was, will := p.Needs(c), next.Needs(c)
		switch {
		case was == will:
		case was < 0:
			out = append(out, fmt.Sprintf("%s: denied -> %s", c, needsText(will)))
		case will >= 0 && will < was:
			out = append(out, fmt.Sprintf("%s: %s -> %s", c, needsText(was), needsText(will)))
		}
	}
	if next.AllowMigrationAgent && !p.AllowMigrationAgent {
		out = append(out, "migration agents allowed")
	}
	return out
}

func needsText(n int) string {
	switch {
	case n < 0:
		return "denied"
	case n == 0:
		return "released without approval"
	}
	return fmt.Sprintf("%d approvals", n)
}

// ErrInvalidPolicy wraps every Validate refusal.
var ErrInvalidPolicy = errors.New("invalid release policy")

// Validate refuses unknown classes and actions and silly numbers.
func (p Policy) Validate() error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	return nil
}

func (p Policy) validate() error {
	known := map[Class]bool{}
	for _, c := range Classes {
		known[c] = true
	}
	for c, a := range p.Actions {
		if !known[c] {
			return fmt.Errorf("unknown class %q", c)
		}
		if a != ActionRelease && a != ActionApprove && a != ActionDeny {
			return fmt.Errorf("class %s: unknown action %q", c, a)
		}
	}
	for c, n := range p.Approvers {
		if !known[c] || n < 0 || n > 16 {
			return fmt.Errorf("approvers for %q: %d", c, n)
		}
	}
	switch p.StaleCRL {
	case "", StaleCRLWarn, StaleCRLRefuse:
	default:
		return fmt.Errorf("stale_crl %q: want warn or refuse", p.StaleCRL)
	}
	if p.ApprovalTTL < 0 || time.Duration(p.ApprovalTTL) > 7*24*time.Hour {
		return fmt.Errorf("approval_ttl %s out of range", time.Duration(p.ApprovalTTL))
	}
	if p.HeartbeatInterval < 0 || (p.HeartbeatInterval > 0 && time.Duration(p.HeartbeatInterval) < 5*time.Second) {
		return fmt.Errorf("heartbeat_interval %s out of range", time.Duration(p.HeartbeatInterval))
	}
	return nil
}

// Duration is a time.Duration that reads and writes as "15m0s" in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"15m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
