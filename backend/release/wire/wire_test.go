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
	Comment       string `json:"comment"`
	NonceHex      string `json:"nonce"`
	PublicKeyIKM  string `json:"hpke_derive_ikm"`
	PublicKeyHex  string `json:"hpke_public_key"`
	VolumeID      string `json:"volume_id"`
	ReportDataHex string `json:"report_data"`
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

// TestTranscriptVector checks the implementation against the stored vector
// and against the encoding spelled out by hand, byte by byte.
func TestTranscriptVector(t *testing.T) {
	v := loadVector(t)
	nonce := mustHex(t, v.NonceHex)
	pub := mustHex(t, v.PublicKeyHex)
	// The vector's key is reproducible: DeriveKeyPair(ikm).
	k, err := kem.DeriveKeyPair(mustHex(t, v.PublicKeyIKM))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.PublicKey().Bytes(), pub) {
		t.Fatal("vector public key does not match DeriveKeyPair(ikm)")
	}
	got, err := Transcript(nonce, pub, v.VolumeID)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got[:]) != v.ReportDataHex {
		t.Fatalf("transcript = %x, vector says %s", got, v.ReportDataHex)
	}
	// By hand: 00000014 "keyholder-release-v1" 00000020 nonce 000004c0 pub len(vol) vol.
	var manual []byte
	manual = append(manual, 0, 0, 0, 20)
	manual = append(manual, "keyholder-release-v1"...)
	manual = append(manual, 0, 0, 0, 32)
	manual = append(manual, nonce...)
	manual = append(manual, 0, 0, 0x04, 0xc0)
	manual = append(manual, pub...)
	manual = append(manual, 0, 0, 0, byte(len(v.VolumeID)))
	manual = append(manual, v.VolumeID...)
	if want := sha512.Sum512(manual); want != got {
		t.Fatalf("transcript differs from the hand-built encoding")
	}
}

func TestTranscriptAK(t *testing.T) {
	v := loadVector(t)
	nonce, pub := mustHex(t, v.NonceHex), mustHex(t, v.PublicKeyHex)
	plain, _ := Transcript(nonce, pub, v.VolumeID)
	if same, err := TranscriptAK(nonce, pub, v.VolumeID, nil); err != nil || same != plain {
		t.Fatal("TranscriptAK without a digest differs from Transcript")
	}
	ak := bytes.Repeat([]byte{0xAC}, 32)
	got, err := TranscriptAK(nonce, pub, v.VolumeID, ak)
	if err != nil || got == plain {
		t.Fatalf("AK not bound: %v", err)
	}
	var manual []byte
	for _, f := range [][]byte{[]byte(Domain), nonce, pub, []byte(v.VolumeID), ak} {
		manual = append(manual, byte(len(f)>>24), byte(len(f)>>16), byte(len(f)>>8), byte(len(f)))
		manual = append(manual, f...)
	}
	if sha512.Sum512(manual) != got {
		t.Fatal("TranscriptAK differs from the hand-built encoding")
	}
	if _, err := TranscriptAK(nonce, pub, v.VolumeID, ak[:31]); err == nil {
		t.Fatal("short AK digest accepted")
	}
}

func TestTranscriptRefusesBadInputs(t *testing.T) {
	nonce := make([]byte, NonceSize)
	pub := make([]byte, PublicKeySize)
	cases := []struct {
		name    string
		nonce   []byte
		pub     []byte
		vol     string
		wantErr string
	}{
		{"short nonce", nonce[:31], pub, "vol_1", "nonce is 31 bytes"},
		{"long nonce", append(nonce, 0), pub, "vol_1", "nonce is 33 bytes"},
		{"short key", nonce, pub[:1215], "vol_1", "public key is 1215 bytes"},
		{"empty volume", nonce, pub, "", "volume ID"},
		{"volume with slash", nonce, pub, "vol/1", "volume ID"},
		{"volume too long", nonce, pub, strings.Repeat("a", 129), "volume ID"},
	}
	for _, c := range cases {
		_, err := Transcript(c.nonce, c.pub, c.vol)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.wantErr)
		}
	}
	// Each field moves the hash: no two inputs that differ only in how
	// bytes are split between fields collide.
	a, _ := Transcript(nonce, pub, "vol_1")
	b, _ := Transcript(nonce, pub, "vol_2")
	n2 := bytes.Clone(nonce)
	n2[31] = 1
	c, _ := Transcript(n2, pub, "vol_1")
	if a == b || a == c {
		t.Fatal("transcript ignores a field")
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
		VMID: "vm-web-01", VolumeID: "vol_1", Purpose: PurposeBoot, Generation: 1,
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
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: err = %v, want %q", c.name, err, c.wantErr)
		case err != nil && !errors.Is(err, ErrDecode):
			t.Errorf("%s: err %v does not wrap ErrDecode", c.name, err)
		}
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

// FuzzDecodeRotationConfirm: the decoder never panics and accepts only
// well-formed confirmations.
func FuzzDecodeRotationConfirm(f *testing.F) {
	good, _ := json.Marshal(RotationConfirm{RequestID: "req_1", VMID: "vm-1", VolumeID: "vol_1", Generation: 2, Proof: make([]byte, 32)})
	f.Add(good)
	f.Add([]byte(`{"request_id":"req_1","request_id":"req_2"}`))
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
