package wire

import (
	"bytes"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"
)

// MaxBody bounds every request body the release API reads.
const MaxBody = 64 << 10

// Purpose says why a guest asks.
type Purpose string

// The purposes a request may name.
const (
	PurposeBoot      Purpose = "boot"      // open the volume at boot
	PurposeRotate    Purpose = "rotate"    // move the volume to a new generation
	PurposeHeartbeat Purpose = "heartbeat" // fresh evidence only, nothing released
)

// Code is a stable reason code in an Error; agents and scripts branch on it.
type Code string

// Reason codes the release API answers with.
const (
	CodeBadRequest         Code = "bad_request"            // malformed, oversized or out-of-range request
	CodeUnsupportedVersion Code = "unsupported_version"    // the request speaks another wire version (an old agent)
	CodeRateLimited        Code = "rate_limited"           // too many requests from this source or for this VM
	CodeNonceUnknown       Code = "nonce_unknown"          // nonce never issued, already used, or expired
	CodeReportDataMismatch Code = "report_data_mismatch"   // REPORT_DATA does not bind this nonce, key and volume
	CodeEvidenceInvalid    Code = "evidence_invalid"       // the evidence did not verify (see Reasons)
	CodeEvidenceReplayed   Code = "evidence_replayed"      // this exact evidence was presented before
	CodeReportOtherVM      Code = "report_other_vm"        // the report's launch belongs to another VM
	CodeVolumeNotForVM     Code = "volume_not_for_vm"      // no longer sent (a VM may hold several volumes); kept for recorded refusals
	CodeVolumeUnknown      Code = "volume_unknown"         // no such volume
	CodeVolumeRevoked      Code = "volume_revoked"         // the volume was revoked
	CodeVMRevoked          Code = "vm_revoked"             // the VM was revoked
	CodeGenerationUnknown  Code = "generation_unknown"     // the volume has no such generation
	CodePolicyDebug        Code = "policy_debug"           // the guest policy allows debugging
	CodePolicyMigration    Code = "policy_migration_agent" // the guest policy allows a migration agent
	CodeDeniedByPolicy     Code = "denied_by_policy"       // the console's policy denies this class of event
	CodeDeniedByOfficer    Code = "denied_by_officer"      // an officer denied the request
	CodeRequestExpired     Code = "request_expired"        // the pending request or its approval expired
	CodeUnexpectedEvent    Code = "unexpected_event"       // a heartbeat shows an event that needs a new release
	CodeBadProof           Code = "bad_proof"              // a rotation confirmation without proof of the new secret
	CodeRequestUnknown     Code = "request_unknown"        // no such request
	CodeUnavailable        Code = "unavailable"            // the console cannot release now (locked, busy)
	CodeInternal           Code = "internal"               // a console bug; its log has the details
)

// Challenge answers POST /v1/challenge.
type Challenge struct {
	Nonce     []byte    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Evidence is what the guest proves itself with. Its JSON is the same as
// the console's attestation evidence (backend/attest.Evidence).
type Evidence struct {
	// Report is the raw SEV-SNP attestation report (1184 bytes).
	Report []byte `json:"report"`
	// CertTable is the extended report's certificate table (GUID table with
	// VCEK or VLEK, ASK, ARK) when the host provides one.
	CertTable []byte `json:"cert_table,omitempty"`
	// VCEK, VLEK, ASK, ASVK and ARK are DER certificates given separately.
	VCEK []byte `json:"vcek,omitempty"`
	VLEK []byte `json:"vlek,omitempty"`
	ASK  []byte `json:"ask,omitempty"`
	ASVK []byte `json:"asvk,omitempty"`
	ARK  []byte `json:"ark,omitempty"`
	// TPM is a go-tpm-tools Attestation (protobuf) when the guest has a vTPM.
	TPM []byte `json:"tpm,omitempty"`
}

// ReleaseRequest is the body of POST /v1/release and POST /v1/heartbeat.
type ReleaseRequest struct {
	// Version is the wire version the agent speaks (Version); a request
	// without one is version 1, which is refused.
	Version       int      `json:"version"`
	VMID          string   `json:"vm_id"`
	VolumeID      string   `json:"volume_id"`
	Purpose       Purpose  `json:"purpose"`
	Generation    int      `json:"generation"` // the generation the guest's volume token names; 0: current
	Nonce         []byte   `json:"nonce"`
	HPKEPublicKey []byte   `json:"hpke_public_key"`
	Evidence      Evidence `json:"evidence"`

	pk    hpke.PublicKey // HPKEPublicKey parsed by Check
	pkFor []byte         // the bytes pk was parsed from
}

// PublicKey returns HPKEPublicKey parsed, once: Check keeps what it parsed
// (as long as HPKEPublicKey is not changed after).
func (req *ReleaseRequest) PublicKey() (hpke.PublicKey, error) {
	if req.pk != nil && bytes.Equal(req.pkFor, req.HPKEPublicKey) {
		return req.pk, nil
	}
	pk, err := ParsePublicKey(req.HPKEPublicKey)
	if err != nil {
		return nil, err
	}
	req.pk, req.pkFor = pk, bytes.Clone(req.HPKEPublicKey)
	return pk, nil
}

// Status of a release answer.
const (
	StatusReleased = "released"
	StatusPending  = "pending"
)

// Release answers POST /v1/release and GET /v1/release/{id}.
type Release struct {
	RequestID string `json:"request_id"`
	Status    string `json:"status"` // released or pending
	Class     string `json:"class"`
	// Generation and Sealed carry the volume's secret when released.
	Generation int    `json:"generation,omitempty"`
	Sealed     []byte `json:"sealed,omitempty"`
	// NewGeneration and NewSealed carry the next generation's secret for a
	// rotation.
	NewGeneration int    `json:"new_generation,omitempty"`
	NewSealed     []byte `json:"new_sealed,omitempty"`
	// RetryAfter is how many seconds a pending guest should wait before it
	// asks again.
	RetryAfter int       `json:"retry_after,omitempty"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	Simulated  bool      `json:"simulated,omitempty"`
}

// Heartbeat answers POST /v1/heartbeat.
type Heartbeat struct {
	Status string `json:"status"` // verified
	// NextIn is how many seconds until the console expects the next one.
	NextIn    int  `json:"next_in"`
	Simulated bool `json:"simulated,omitempty"`
}

// Reason is one finding of the evidence check.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error is every refusal's body: {"error": {...}}.
type Error struct {
	Code    Code     `json:"code"`
	Message string   `json:"message"`
	Reasons []Reason `json:"reasons,omitempty"`
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// ErrorBody wraps an Error as the API writes it.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// ErrDecode wraps every decoding failure.
var ErrDecode = errors.New("bad request")

// ErrVersion wraps the refusal of a request in another wire version
// (answered with CodeUnsupportedVersion).
var ErrVersion = errors.New("unsupported wire version")

// RefusalCode is the reason code for an error from DecodeReleaseRequest or
// Check: CodeUnsupportedVersion for another wire version, else CodeBadRequest.
func RefusalCode(err error) Code {
	if errors.Is(err, ErrVersion) {
		return CodeUnsupportedVersion
	}
	return CodeBadRequest
}

// DecodeReleaseRequest reads one ReleaseRequest from r (at most MaxBody
// bytes) and checks every field's shape. It refuses unknown and duplicate
// fields and anything after the object.
func DecodeReleaseRequest(r io.Reader) (*ReleaseRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read body: %v", ErrDecode, err)
	}
	if len(body) > MaxBody {
		return nil, fmt.Errorf("%w: body is larger than %d bytes", ErrDecode, MaxBody)
	}
	var req ReleaseRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if err := req.Check(); err != nil {
		return nil, err
	}
	return &req, nil
}

// Check validates a request's fields (lengths, IDs, purpose).
func (req *ReleaseRequest) Check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrDecode}, a...)...)
	}
	if req.Version != Version {
		v := req.Version
		if v == 0 {
			v = 1 // version 1 had no version field
		}
		return fmt.Errorf("%w: %w: the request speaks wire version %d; this console speaks version %d (%s) only: update the guest agent",
			ErrDecode, ErrVersion, v, Version, Domain)
	}
	if err := CheckID(req.VMID); err != nil {
		return bad("vm_id: %v", err)
	}
	if err := CheckID(req.VolumeID); err != nil {
		return bad("volume_id: %v", err)
	}
	switch req.Purpose {
	case PurposeBoot, PurposeRotate, PurposeHeartbeat:
	default:
		return bad("purpose %q is not boot, rotate or heartbeat", req.Purpose)
	}
	if req.Generation < 0 || req.Generation > MaxGeneration {
		return bad("generation %d out of range", req.Generation)
	}
	if len(req.Nonce) != NonceSize {
		return bad("nonce is %d bytes, want %d", len(req.Nonce), NonceSize)
	}
	if len(req.HPKEPublicKey) != PublicKeySize {
		return bad("hpke_public_key is %d bytes, want %d", len(req.HPKEPublicKey), PublicKeySize)
	}
	if _, err := req.PublicKey(); err != nil {
		return bad("hpke_public_key: %v", err)
	}
	ev := &req.Evidence
	if len(ev.Report) != SnpReportSize {
		return bad("evidence.report is %d bytes, want %d", len(ev.Report), SnpReportSize)
	}
	if len(ev.CertTable) > MaxCertTableSize {
		return bad("evidence.cert_table is %d bytes, at most %d", len(ev.CertTable), MaxCertTableSize)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{{"vcek", ev.VCEK}, {"vlek", ev.VLEK}, {"ask", ev.ASK}, {"asvk", ev.ASVK}, {"ark", ev.ARK}} {
		if len(c.b) > MaxCertSize {
			return bad("evidence.%s is %d bytes, at most %d", c.name, len(c.b), MaxCertSize)
		}
	}
	if len(ev.TPM) > MaxTPMSize {
		return bad("evidence.tpm is %d bytes, at most %d", len(ev.TPM), MaxTPMSize)
	}
	return nil
}

// decodeStrict unmarshals one JSON object into v, refusing unknown fields,
// fields named twice or spelled otherwise than the protocol spells them, and
// trailing data.
func decodeStrict(body []byte, v any) error {
	if err := checkNames(body, reflect.TypeOf(v)); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrDecode)
	}
	return nil
}

// checkNames walks the token stream of a JSON value to be decoded into a
// value of type t and refuses what encoding/json would take silently: an
// object that names a field twice (encoding/json keeps the last), and a
// struct's field spelled otherwise than its tag (encoding/json matches names
// without regard to case, and even folds the Kelvin sign to k). Either way a
// request could carry a second value that another parser reads, and two
// parsers could disagree about what was checked. It also bounds nesting.
func checkNames(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		obj    bool
		keys   map[string]struct{}
		expect bool                    // in an object: the next token is a key
		fields map[string]reflect.Type // a struct's JSON names; nil: any name
		next   reflect.Type            // the type of the value that follows (nil: unknown)
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tok.(string)
			if _, dup := top.keys[k]; dup {
				return fmt.Errorf("field %q appears twice", k)
			}
			top.keys[k] = struct{}{}
			top.expect = false
			if top.fields != nil {
				ft, ok := top.fields[k]
				if !ok {
					return fmt.Errorf("unknown field %q", k)
				}
				top.next = ft
			}
			continue
		}
		// tok is a value: of the root, an array's element or an object's field.
		vt := t
		if top != nil {
			vt = top.next
			if top.obj {
				top.expect = true
			}
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			f := &frame{obj: true, keys: map[string]struct{}{}, expect: true}
			switch vt = deref(vt); {
			case vt == nil:
			case vt.Kind() == reflect.Struct:
				f.fields = jsonFields(vt)
			case vt.Kind() == reflect.Map:
				f.next = vt.Elem()
			}
			stack = append(stack, f)
		case '[':
			f := &frame{}
			if vt = deref(vt); vt != nil && (vt.Kind() == reflect.Slice || vt.Kind() == reflect.Array) {
				f.next = vt.Elem()
			}
			stack = append(stack, f)
		case ']', '}':
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 16 {
			return errors.New("JSON nested too deeply")
		}
	}
}

// deref is t without its pointers (nil stays nil).
func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// fieldNames caches jsonFields.
var fieldNames sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields maps a struct's JSON field names, exactly as encoding/json
// writes them, to the fields' types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldNames.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if ft := deref(f.Type); f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			for k, v := range jsonFields(ft) {
				m[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldNames.Store(t, m)
	return m
}
