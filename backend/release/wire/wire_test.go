package wire

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type transcriptVector struct {
	Comment         string `json:"comment"`
	NonceHex        string `json:"nonce"`
	PublicKeyIKM    string `json:"hpke_derive_ikm"`
	PublicKeyHex    string `json:"hpke_public_key"`
	VolumeID        string `json:"volume_id"`
	VMID            string `json:"vm_id"`
	Purpose         string `json:"purpose"`
	Generation      int    `json:"generation"`
	ReportDataHex   string `json:"report_data"`
	AKDigestHex     string `json:"ak_digest"`
	ReportDataAKHex string `json:"report_data_ak"`
}

func loadVector(t *testing.T) transcriptVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "transcript.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v transcriptVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (v transcriptVector) binding(t *testing.T) Binding {
	return Binding{Nonce: mustHex(t, v.NonceHex), HPKEPublicKey: mustHex(t, v.PublicKeyHex), VolumeID: v.VolumeID,
		VMID: v.VMID, Purpose: Purpose(v.Purpose), Generation: v.Generation}
}

// handBuilt is the version 2 encoding spelled out field by field.
func handBuilt(b Binding) [64]byte {
	var m []byte
	lp := func(f []byte) {
		m = append(m, byte(len(f)>>24), byte(len(f)>>16), byte(len(f)>>8), byte(len(f)))
		m = append(m, f...)
	}
	lp([]byte("keyholder-release-v2"))
	lp(b.Nonce)
	lp(b.HPKEPublicKey)
	lp([]byte(b.VolumeID))
	lp([]byte(b.VMID))
	lp([]byte(b.Purpose))
	m = append(m, byte(b.Generation>>24), byte(b.Generation>>16), byte(b.Generation>>8), byte(b.Generation))
	lp(b.AKDigest)
	return sha512.Sum512(m)
}

// TestTranscriptVector checks the implementation against the stored vector
// (computed outside Go) and against the encoding spelled out by hand.
func TestTranscriptVector(t *testing.T) {
	v := loadVector(t)
	b := v.binding(t)
	// The vector's key is reproducible: DeriveKeyPair(ikm).
	k, err := kem.DeriveKeyPair(mustHex(t, v.PublicKeyIKM))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.PublicKey().Bytes(), b.HPKEPublicKey) {
		t.Fatal("vector public key does not match DeriveKeyPair(ikm)")
	}
	got, err := Transcript(b)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got[:]) != v.ReportDataHex {
		t.Fatalf("transcript = %x, vector says %s", got, v.ReportDataHex)
	}
	if handBuilt(b) != got {
		t.Fatal("transcript differs from the hand-built encoding")
	}
	b.AKDigest = mustHex(t, v.AKDigestHex)
	withAK, err := Transcript(b)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(withAK[:]) != v.ReportDataAKHex || handBuilt(b) != withAK {
		t.Fatalf("transcript with AK = %x, vector says %s", withAK, v.ReportDataAKHex)
	}
	if _, err := Transcript(Binding{Nonce: b.Nonce, HPKEPublicKey: b.HPKEPublicKey, VolumeID: b.VolumeID, VMID: b.VMID,
		Purpose: b.Purpose, AKDigest: b.AKDigest[:31]}); err == nil {
		t.Fatal("short AK digest accepted")
	}
}

func TestTranscriptRefusesBadInputs(t *testing.T) {
	good := Binding{Nonce: make([]byte, NonceSize), HPKEPublicKey: make([]byte, PublicKeySize), VolumeID: "vol_1", VMID: "vm-1", Purpose: PurposeBoot}
	cases := []struct {
		name    string
		edit    func(*Binding)
		wantErr string
	}{
		{"short nonce", func(b *Binding) { b.Nonce = b.Nonce[:31] }, "nonce is 31 bytes"},
		{"long nonce", func(b *Binding) { b.Nonce = make([]byte, 33) }, "nonce is 33 bytes"},
		{"short key", func(b *Binding) { b.HPKEPublicKey = b.HPKEPublicKey[:1215] }, "public key is 1215 bytes"},
		{"empty volume", func(b *Binding) { b.VolumeID = "" }, "volume ID"},
		{"volume with slash", func(b *Binding) { b.VolumeID = "vol/1" }, "volume ID"},
		{"volume too long", func(b *Binding) { b.VolumeID = strings.Repeat("a", 129) }, "volume ID"},
		{"empty VM ID", func(b *Binding) { b.VMID = "" }, "VM ID"},
		{"unknown purpose", func(b *Binding) { b.Purpose = "steal" }, "purpose"},
		{"negative generation", func(b *Binding) { b.Generation = -1 }, "generation"},
		{"huge generation", func(b *Binding) { b.Generation = MaxGeneration + 1 }, "generation"},
	}
	for _, c := range cases {
		b := good
		c.edit(&b)
		_, err := Transcript(b)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.wantErr)
		}
	}
	// Each field moves the hash, including the ones that classify the
	// request (VM ID, purpose, generation).
	base, _ := Transcript(good)
	for _, edit := range []func(*Binding){
		func(b *Binding) { b.VolumeID = "vol_2" },
		func(b *Binding) { b.Nonce = append(bytes.Clone(b.Nonce[:31]), 1) },
		func(b *Binding) { b.VMID = "vm-2" },
		func(b *Binding) { b.Purpose = PurposeRotate },
		func(b *Binding) { b.Generation = 1 },
		func(b *Binding) { b.AKDigest = make([]byte, 32) },
		// Bytes moved between adjacent fields.
		func(b *Binding) { b.VolumeID, b.VMID = "vol_1v", "m-1" },
	} {
		b := good
		edit(&b)
		if got, _ := Transcript(b); got == base {
			t.Fatalf("transcript ignores an edit: %+v", b)
		}
	}
}

// TestRequestVersion: a request without a version (wire version 1) or with
// another version is refused with an error naming both versions.
func TestRequestVersion(t *testing.T) {
	for _, c := range []struct {
		version int
		want    string
	}{{0, "wire version 1"}, {1, "wire version 1"}, {3, "wire version 3"}} {
		req := validRequest()
		req.Version = c.version
		err := req.Check()
		if !errors.Is(err, ErrVersion) || RefusalCode(err) != CodeUnsupportedVersion || !strings.Contains(err.Error(), c.want) ||
			!strings.Contains(err.Error(), "version 2") {
			t.Errorf("version %d: err = %v", c.version, err)
		}
	}
}

func TestSealOpenBinding(t *testing.T) {
	k, pub, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := NewKeyPair()
	secret := bytes.Repeat([]byte{0xA5}, 32)
	sealed, err := Seal(pub, "req_1", "vol_1", 3, secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(k, "req_1", "vol_1", 3, sealed)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %v", err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed output contains the plaintext")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	cases := []struct {
		name   string
		key    hpke.PrivateKey
		req    string
		vol    string
		gen    uint32
		sealed []byte
	}{
		{"other key", other, "req_1", "vol_1", 3, sealed},
		{"other request", k, "req_2", "vol_1", 3, sealed},
		{"other volume", k, "req_1", "vol_2", 3, sealed},
		{"other generation", k, "req_1", "vol_1", 4, sealed},
		{"tampered", k, "req_1", "vol_1", 3, tampered},
		{"truncated", k, "req_1", "vol_1", 3, sealed[:100]},
		{"empty", k, "req_1", "vol_1", 3, nil},
	}
	for _, c := range cases {
		if _, err := Open(c.key, c.req, c.vol, c.gen, c.sealed); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", c.name, err)
		}
	}
	if _, err := Seal(pub[:100], "req_1", "vol_1", 3, secret); err == nil {
		t.Error("seal to a truncated key succeeded")
	}
}

func validRequest() ReleaseRequest {
	return ReleaseRequest{
		Version: Version, VMID: "vm-web-01", VolumeID: "vol_1", Purpose: PurposeBoot, Generation: 1,
		Nonce: make([]byte, NonceSize), HPKEPublicKey: make([]byte, PublicKeySize),
		Evidence: Evidence{Report: make([]byte, SnpReportSize)},
	}
}

func encode(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeReleaseRequest(t *testing.T) {
	good := encode(t, validRequest())
	mod := func(f func(*ReleaseRequest)) string {
		r := validRequest()
		f(&r)
		return encode(t, r)
	}
	b64 := base64.StdEncoding.EncodeToString
	cases := []struct {
		name    string
		body    string
		wantErr string // "" means accepted
	}{
		{"valid", good, ""},
		{"valid with certs and tpm", mod(func(r *ReleaseRequest) { r.Evidence.CertTable = []byte{1}; r.Evidence.TPM = []byte{2} }), ""},
		{"unknown field", strings.Replace(good, `"vm_id"`, `"vm_idx":"a","vm_id"`, 1), "unknown field"},
		{"duplicate field", strings.Replace(good, `"vm_id"`, `"volume_id":"vol_2","vm_id"`, 1), "appears twice"},
		{"duplicate nested field", strings.Replace(good, `"report"`, `"tpm":"","tpm"`, 1), "appears twice"},
		// encoding/json matches names without regard to case (and folds
		// the Kelvin sign to k): a second spelling of a field would be a
		// second value that another parser reads differently.
		{"field twice in two cases", strings.Replace(good, `"vm_id"`, `"VM_ID":"vm-evil","vm_id"`, 1), `unknown field "VM_ID"`},
		{"field in another case", strings.Replace(good, `"vm_id"`, `"Vm_Id"`, 1), `unknown field "Vm_Id"`},
		{"nested field in another case", strings.Replace(good, `"report"`, `"REPORT"`, 1), `unknown field "REPORT"`},
		{"field with a folding rune", strings.Replace(good, `"hpke_public_key"`, `"hpke_public_\u212aey"`, 1), "unknown field \"hpke_public_\u212aey\""},
		{"trailing data", good + "{}", "after the JSON object"},
		{"not an object", `[1,2]`, "bad request"},
		{"empty", ``, "bad request"},
		{"too large", `{"vm_id":"` + strings.Repeat("a", MaxBody) + `"}`, "larger than"},
		{"bad vm id", mod(func(r *ReleaseRequest) { r.VMID = "a b" }), "vm_id"},
		{"empty volume", mod(func(r *ReleaseRequest) { r.VolumeID = "" }), "volume_id"},
		{"bad purpose", mod(func(r *ReleaseRequest) { r.Purpose = "steal" }), "purpose"},
		{"negative generation", mod(func(r *ReleaseRequest) { r.Generation = -1 }), "generation"},
		{"short nonce", mod(func(r *ReleaseRequest) { r.Nonce = r.Nonce[:16] }), "nonce is 16 bytes"},
		{"short key", mod(func(r *ReleaseRequest) { r.HPKEPublicKey = r.HPKEPublicKey[:32] }), "hpke_public_key is 32 bytes"},
		{"short report", mod(func(r *ReleaseRequest) { r.Evidence.Report = r.Evidence.Report[:1000] }), "report is 1000 bytes"},
		{"big vcek", mod(func(r *ReleaseRequest) { r.Evidence.VCEK = make([]byte, MaxCertSize+1) }), "vcek"},
		{"big cert table", mod(func(r *ReleaseRequest) { r.Evidence.CertTable = make([]byte, MaxCertTableSize+1) }), "cert_table"},
		{"bad base64", strings.Replace(good, `"nonce":"`+b64(make([]byte, 32)), `"nonce":"!!!`, 1), "bad request"},
		{"deep nesting", `{"evidence":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "nested too deeply"},
	}
	for _, c := range cases {
		_, err := DecodeReleaseRequest(strings.NewReader(c.body))
		checkDecodeErr(t, c.name, err, c.wantErr)
	}
}

// checkDecodeErr fails the test unless err is nil when want is "", or an
// ErrDecode whose text holds want.
func checkDecodeErr(t *testing.T, name string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: refused: %v", name, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: err = %v, want %q", name, err, want)
	case err != nil && !errors.Is(err, ErrDecode):
		t.Errorf("%s: err %v does not wrap ErrDecode", name, err)
	}
}

func TestPinnedTLSConfig(t *testing.T) {
	if _, err := PinnedTLSConfig("abc"); err == nil {
		t.Fatal("short pin accepted")
	}
	if _, err := PinnedTLSConfig(base64.StdEncoding.EncodeToString(make([]byte, 32))); err != nil {
		t.Fatalf("base64 pin refused: %v", err)
	}
	c, err := PinnedTLSConfig(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	if c.MinVersion != 0x0304 {
		t.Fatalf("min version %#x, want TLS 1.3", c.MinVersion)
	}
}

// FuzzDecodeReleaseRequest: the decoder never panics, and what it accepts
// re-encodes to a request it accepts again with the same fields. Inputs are
// a few KiB, so minimising each new one takes long; run it with a short
// -fuzzminimizetime (for example 1s) to keep the fuzzer exploring.
func FuzzDecodeReleaseRequest(f *testing.F) {
	b, _ := json.Marshal(validRequest())
	f.Add(b)
	f.Add([]byte(`{"vm_id":"a","vm_id":"b"}`))
	f.Add([]byte(`{"vm_id":"a","VM_ID":"b","evidence":{"Report":""}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeReleaseRequest(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := DecodeReleaseRequest(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		if req2.VMID != req.VMID || req2.VolumeID != req.VolumeID || !bytes.Equal(req2.Nonce, req.Nonce) ||
			!bytes.Equal(req2.Evidence.Report, req.Evidence.Report) {
			t.Fatal("round trip changed the request")
		}
	})
}

func TestDecodeRotationConfirm(t *testing.T) {
	good := encode(t, RotationConfirm{RequestID: "req_1", VMID: "vm-1", VolumeID: "vol_1", Generation: 2, Proof: make([]byte, 32)})
	cases := []struct{ name, body, wantErr string }{
		{"valid", good, ""},
		{"duplicate field", strings.Replace(good, `"vm_id"`, `"vm_id":"vm-2","vm_id"`, 1), "appears twice"},
		{"field twice in two cases", strings.Replace(good, `"request_id"`, `"Request_ID":"req_2","request_id"`, 1), `unknown field "Request_ID"`},
		{"field in another case", strings.Replace(good, `"proof"`, `"PROOF"`, 1), `unknown field "PROOF"`},
	}
	for _, c := range cases {
		_, err := DecodeRotationConfirm(strings.NewReader(c.body))
		checkDecodeErr(t, c.name, err, c.wantErr)
	}
}

// FuzzDecodeRotationConfirm: the decoder never panics and accepts only
// well-formed confirmations.
func FuzzDecodeRotationConfirm(f *testing.F) {
	good, _ := json.Marshal(RotationConfirm{RequestID: "req_1", VMID: "vm-1", VolumeID: "vol_1", Generation: 2, Proof: make([]byte, 32)})
	f.Add(good)
	f.Add([]byte(`{"request_id":"req_1","request_id":"req_2"}`))
	f.Add([]byte(`{"request_id":"req_1","REQUEST_ID":"req_2"}`))
	f.Add([]byte(`{"generation":-1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeRotationConfirm(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		if CheckID(c.RequestID) != nil || CheckID(c.VMID) != nil || CheckID(c.VolumeID) != nil || c.Generation < 1 || len(c.Proof) != 32 {
			t.Fatalf("accepted a malformed confirmation: %+v", c)
		}
	})
}

// A request's key is parsed once by Check and sealed to as parsed; a key
// changed after Check is parsed again, and a key that does not parse is
// refused by SealTo's callers before anything is sealed.
func TestRequestPublicKeyParsedOnce(t *testing.T) {
	k, pub, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	req := &ReleaseRequest{HPKEPublicKey: pub}
	first, err := req.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := req.PublicKey()
	if first != again {
		t.Fatal("the key was parsed a second time")
	}
	sealed, err := SealTo(first, "req_1", "vol_1", 1, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Open(k, "req_1", "vol_1", 1, sealed); err != nil || string(got) != "secret" {
		t.Fatalf("open: %q %v", got, err)
	}
	_, pub2, _ := NewKeyPair()
	req.HPKEPublicKey = pub2
	if second, err := req.PublicKey(); err != nil || second == first || !bytes.Equal(second.Bytes(), pub2) {
		t.Fatalf("a changed key was not parsed anew: %v", err)
	}
	req.HPKEPublicKey = bytes.Repeat([]byte{0xff}, len(pub))
	if _, err := req.PublicKey(); err == nil {
		t.Fatal("a junk key parsed")
	}
	if _, err := SealTo(nil, "req_1", "vol_1", 1, []byte("secret")); err == nil {
		t.Fatal("sealed to no key")
	}
}

// BenchmarkDecodeReleaseRequest decodes a request the size of a real one:
// a report, a VCEK, ASK and ARK (about 1.4 KiB each) and a vTPM attestation.
func BenchmarkDecodeReleaseRequest(b *testing.B) {
	r := validRequest()
	r.Evidence.VCEK = make([]byte, 1400)
	r.Evidence.ASK = make([]byte, 1600)
	r.Evidence.ARK = make([]byte, 1600)
	r.Evidence.TPM = make([]byte, 4000)
	body, err := json.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeReleaseRequest(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}
