package luks2

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"golang.org/x/crypto/pbkdf2"
	"keyholder/backend/internal/argon"
)

// KDF types.
const (
	KDFPBKDF2   = "pbkdf2"
	KDFArgon2id = "argon2id"
	KDFArgon2i  = "argon2i" // read only
)

// KDF says how a keyslot's key is derived from its passphrase or secret.
type KDF struct {
	Type       string `json:"type"`                 // KDFPBKDF2 or KDFArgon2id
	Hash       string `json:"hash,omitempty"`       // pbkdf2: sha256 when empty
	Iterations int    `json:"iterations,omitempty"` // pbkdf2: at least 1000
	Time       int    `json:"time,omitempty"`       // argon2: passes, at least 4
	MemoryKiB  int    `json:"memory,omitempty"`     // argon2: at least 32 KiB, at most 4 GiB
	Threads    int    `json:"cpus,omitempty"`       // argon2: 1 to 4
}

// ReleaseKDF is right for a 32-byte random release secret: nothing to
// stretch, so PBKDF2 with cryptsetup's minimum iterations.
func ReleaseKDF() KDF { return KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: 1000} }

// RecoveryKDF is the default for a recovery passphrase: Argon2id with 256 MiB
// so that a small guest's initramfs can still open it.
func RecoveryKDF() KDF { return KDF{Type: KDFArgon2id, Time: 6, MemoryKiB: 256 * 1024, Threads: 2} }

// Limits cryptsetup applies (lib/utils_pbkdf.c) and we apply on reading too,
// so that a hostile header cannot make us spend unbounded time or memory.
const (
	minPBKDF2Iterations = 1000
	maxPBKDF2Iterations = 1 << 30
	minArgonTime        = 4
	maxArgonTime        = 1 << 20
	minArgonMemory      = 32
	maxArgonMemory      = 4 * 1024 * 1024
	maxArgonThreads     = 4
)

func (k KDF) check(reading bool) error {
	switch k.Type {
	case KDFPBKDF2:
		if _, err := hashFunc(k.Hash); err != nil {
			return err
		}
		lo := minPBKDF2Iterations
		if reading {
			lo = 1
		}
		if k.Iterations < lo || k.Iterations > maxPBKDF2Iterations {
			return fmt.Errorf("pbkdf2 iterations %d out of range [%d, %d]", k.Iterations, lo, maxPBKDF2Iterations)
		}
	case KDFArgon2id, KDFArgon2i:
		if !reading && k.Type == KDFArgon2i {
			return fmt.Errorf("kdf argon2i is read only; use argon2id")
		}
		lo := minArgonTime
		if reading {
			lo = 1
		}
		if k.Time < lo || k.Time > maxArgonTime {
			return fmt.Errorf("argon2 time %d out of range [%d, %d]", k.Time, lo, maxArgonTime)
		}
		if k.MemoryKiB < minArgonMemory || k.MemoryKiB > maxArgonMemory {
			return fmt.Errorf("argon2 memory %d KiB out of range [%d, %d]", k.MemoryKiB, minArgonMemory, maxArgonMemory)
		}
		if k.Threads < 1 || k.Threads > maxArgonThreads {
			return fmt.Errorf("argon2 cpus %d out of range [1, %d]", k.Threads, maxArgonThreads)
		}
	default:
		return fmt.Errorf("unsupported kdf %q", k.Type)
	}
	return nil
}

func (k KDF) derive(secret, salt []byte, n int) []byte {
	switch k.Type {
	case KDFPBKDF2:
		h, _ := hashFunc(k.Hash)
		return pbkdf2.Key(secret, salt, k.Iterations, n, h)
	case KDFArgon2i:
		return argon.Key(secret, salt, uint32(k.Time), uint32(k.MemoryKiB), uint8(k.Threads), uint32(n))
	default:
		return argon.IDKey(secret, salt, uint32(k.Time), uint32(k.MemoryKiB), uint8(k.Threads), uint32(n))
	}
}

func hashFunc(name string) (func() hash.Hash, error) {
	switch name {
	case "sha1":
		return sha1.New, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unsupported hash %q", name)
}
