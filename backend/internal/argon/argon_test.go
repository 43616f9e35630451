package argon

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/argon2"
)

// The wrappers must derive exactly what argon2 derives, below and above
// the size where they prefault.
func TestSameAsArgon2(t *testing.T) {
	for _, m := range []uint32{64, 16 << 10} {
		pass, salt := []byte("correct horse"), []byte("0123456789abcdef")
		if got, want := IDKey(pass, salt, 1, m, 2, 32), argon2.IDKey(pass, salt, 1, m, 2, 32); !bytes.Equal(got, want) {
			t.Fatalf("IDKey m=%d: %x, argon2 %x", m, got, want)
		}
		if got, want := Key(pass, salt, 1, m, 2, 32), argon2.Key(pass, salt, 1, m, 2, 32); !bytes.Equal(got, want) {
			t.Fatalf("Key m=%d: %x, argon2 %x", m, got, want)
		}
	}
}
