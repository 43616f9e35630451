package custody

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestChallengeMAC(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	msg := []byte("keyholder-challenge-v1 some challenge")
	a, err := s.ChallengeMAC(msg)
	if err != nil || len(a) != sha256.Size {
		t.Fatalf("mac: %x %v", a, err)
	}
	// The key is HKDF-SHA256(master, info label 0 console_id): check it
	// against a derivation made here from the master key.
	var want []byte
	s.withMaster(func(master []byte, cid string) error {
		k, err := hkdf.Key(sha256.New, master, nil, "keyholder-challenge-mac-v1\x00"+cid, 32)
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, k)
		m.Write(msg)
		want = m.Sum(nil)
		// Not the master key itself, nor another purpose's key.
		m = hmac.New(sha256.New, master)
		m.Write(msg)
		if bytes.Equal(m.Sum(nil), a) {
			t.Error("the challenge MAC is keyed with the master key itself")
		}
		return nil
	})
	if !bytes.Equal(a, want) {
		t.Fatalf("mac = %x, want %x", a, want)
	}
	// Another console process on the same database, unlocked by the same
	// officer, MACs alike (it accepts this console's challenges).
	other := New(s.DB(), Options{KDF: testKDF})
	if _, err := other.ChallengeMAC(msg); !errors.Is(err, ErrLocked) {
		t.Fatalf("locked service: %v", err)
	}
	if _, err := other.Unlock(ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	if b, err := other.ChallengeMAC(msg); err != nil || !bytes.Equal(a, b) {
		t.Fatalf("second process: %x %v", b, err)
	}
	// Another console (another master key) does not.
	third, _ := newTestService(t)
	if c, _ := third.ChallengeMAC(msg); bytes.Equal(a, c) {
		t.Fatal("two consoles share a challenge key")
	}
	s.Lock()
	if _, err := s.ChallengeMAC(msg); !errors.Is(err, ErrLocked) {
		t.Fatalf("after lock: %v", err)
	}
}
