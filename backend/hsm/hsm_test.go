package hsm_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"keyholder/backend/hsm"
	"keyholder/backend/hsm/hsmtest"
)

// TestWrapUnwrap: a key generated in a real SoftHSM2 token wraps and
// unwraps; the key is found again in a new session; other associated data,
// a changed byte, another key or a wrong PIN do not open it; the PIN never
// shows in an error.
func TestWrapUnwrap(t *testing.T) {
	module := hsmtest.Token(t, "kh-test", "1234-pin")
	cfg := hsm.Config{Module: module, TokenLabel: "kh-test", PIN: []byte("1234-pin")}
	if _, err := hsm.Open(cfg, false); !errors.Is(err, hsm.ErrNoKey) {
		t.Fatalf("no key yet: %v", err)
	}
	tok, err := hsm.Open(cfg, true)
	if err != nil || !tok.Created() {
		t.Fatalf("create key: %v", err)
	}
	secret := bytes.Repeat([]byte{0x42}, 32)
	w1, err := tok.Wrap(secret, []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	w2, _ := tok.Wrap(secret, []byte("ad"))
	if bytes.Equal(w1, w2) || bytes.Contains(w1, secret) || len(w1) != 12+32+16 {
		t.Fatalf("wrapping is not randomised AES-GCM: %x", w1)
	}
	tok.Close()

	tok, err = hsm.Open(cfg, true)
	if err != nil || tok.Created() {
		t.Fatalf("reopen: %v (created again: %v)", err, tok != nil && tok.Created())
	}
	got, err := tok.Unwrap(w1, []byte("ad"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("unwrap: %x %v", got, err)
	}
	if _, err := tok.Unwrap(w1, []byte("other")); !errors.Is(err, hsm.ErrUnwrap) {
		t.Errorf("other associated data: %v", err)
	}
	bad := append([]byte(nil), w1...)
	bad[20] ^= 1
	if _, err := tok.Unwrap(bad, []byte("ad")); !errors.Is(err, hsm.ErrUnwrap) {
		t.Errorf("altered: %v", err)
	}
	tok.Close()

	other, err := hsm.Open(hsm.Config{Module: module, TokenLabel: "kh-test", PIN: []byte("1234-pin"), KeyLabel: "another"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Unwrap(w1, []byte("ad")); !errors.Is(err, hsm.ErrUnwrap) {
		t.Errorf("another key: %v", err)
	}
	other.Close()

	_, err = hsm.Open(hsm.Config{Module: module, TokenLabel: "kh-test", PIN: []byte("wrong-pin-9")}, false)
	if err == nil || !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") || strings.Contains(err.Error(), "wrong-pin-9") {
		t.Errorf("wrong PIN: %v", err)
	}
	if _, err := hsm.Open(hsm.Config{Module: module, TokenLabel: "absent", PIN: []byte("1234-pin")}, false); err == nil || !strings.Contains(err.Error(), `no token labelled "absent"`) {
		t.Errorf("absent token: %v", err)
	}
	if _, err := hsm.Open(hsm.Config{Module: t.TempDir() + "/none.so", TokenLabel: "kh-test", PIN: []byte("1234-pin")}, false); err == nil || !strings.Contains(err.Error(), "cannot load module") {
		t.Errorf("absent module: %v", err)
	}
}
