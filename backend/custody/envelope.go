package custody

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"

	"keyholder/backend/internal/argon"
)

// Envelope formats (all AES-256-GCM, a fresh random 96-bit nonce each time,
// stored as nonce || ciphertext || tag):
//
//	officer envelope:  key = Argon2id(passphrase, salt, t, m, p, 32)
//	                   AAD = "keyholder-officer-envelope-v1" 0 console_id 0 officer_id
//	                   plaintext = the 32-byte master key
//	release secret:    key = HKDF-SHA256(master, info "keyholder-wrap-release-secret-v1")
//	                   AAD = "keyholder-release-secret-v1" 0 console_id 0 volume_id 0 decimal(generation)
//	                   plaintext = the 32-byte release secret
//	console key:       key = HKDF-SHA256(master, info "keyholder-wrap-console-key-v1")
//	                   AAD = "keyholder-console-key-v1" 0 console_id 0 name
//	key check value:   HMAC-SHA256(master, "keyholder-master-key-check-v1" 0 console_id)
//
// The associated data binds every wrapped value to its row: a wrapped secret
// copied to another volume, generation, officer or console does not open.

// KDFParams are the Argon2id parameters of an officer envelope. They are
// stored with the envelope, so they can be raised later without breaking
// old envelopes.
type KDFParams struct {
	Time      uint32 `json:"t"`
	MemoryKiB uint32 `json:"m"`
	Threads   uint8  `json:"p"`
}

// DefaultKDF takes about one second and 256 MiB: on the two-core
// development VM (AMD EPYC), one derivation in a fresh process takes
// 0.85-0.86 s at t=8, 0.62-0.66 s at t=6 and 0.22-0.25 s at t=2. (Until
// backend/internal/argon prefaulted Argon2's memory, t=2 took 0.78-0.91 s,
// two thirds of it kernel page-fault work an attacker never pays; t=8 keeps
// the second the officer waits and makes each offline guess four times the
// work.) Four lanes use both cores where there are two and more where
// there are more. Existing envelopes keep the parameters stored with them.
var DefaultKDF = KDFParams{Time: 8, MemoryKiB: 256 * 1024, Threads: 4}

// Limits on stored parameters, so a tampered row or backup cannot make the
// console allocate without bound or skip the work.
const (
	minKDFMemoryKiB = 8
	maxKDFMemoryKiB = 1024 * 1024
	maxKDFTime      = 64
)

func (p KDFParams) validate() error {
	if p.Time < 1 || p.Time > maxKDFTime || p.MemoryKiB < minKDFMemoryKiB || p.MemoryKiB > maxKDFMemoryKiB || p.Threads < 1 {
		return fmt.Errorf("argon2id parameters out of range (t=%d m=%d p=%d)", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

const (
	keySize   = 32
	saltSize  = 16
	nonceSize = 12
)

var errUnwrap = errors.New("message authentication failed")

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // key is always 32 bytes here
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

func seal(key, plaintext, aad []byte) []byte {
	nonce := make([]byte, nonceSize, nonceSize+len(plaintext)+16)
	rand.Read(nonce)
	return newGCM(key).Seal(nonce, nonce, plaintext, aad)
}

func open(key, wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) < nonceSize+16 {
		return nil, errUnwrap
	}
	pt, err := newGCM(key).Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], aad)
	if err != nil {
		return nil, errUnwrap
	}
	return pt, nil
}

func aad(parts ...string) []byte {
	var b []byte
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

func passphraseKey(pass, salt []byte, p KDFParams) []byte {
	return argon.IDKey(pass, salt, p.Time, p.MemoryKiB, p.Threads, keySize)
}

// subkey derives a purpose key from the master key; the caller wipes it.
func subkey(master []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, info, keySize)
	if err != nil {
		panic(err)
	}
	return k
}

func officerAAD(consoleID, officerID string) []byte {
	return aad("keyholder-officer-envelope-v1", consoleID, officerID)
}

func secretAAD(consoleID, volumeID string, gen int) []byte {
	return aad("keyholder-release-secret-v1", consoleID, volumeID, strconv.Itoa(gen))
}

func consoleKeyAAD(consoleID, name string) []byte {
	return aad("keyholder-console-key-v1", consoleID, name)
}

func keyCheck(master []byte, consoleID string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write(aad("keyholder-master-key-check-v1", consoleID))
	return m.Sum(nil)
}

// wrapMaster seals the master key under a passphrase.
func wrapMaster(master, pass []byte, p KDFParams, consoleID, officerID string) (salt, wrapped []byte) {
	salt = make([]byte, saltSize)
	rand.Read(salt)
	k := passphraseKey(pass, salt, p)
	defer clear(k)
	return salt, seal(k, master, officerAAD(consoleID, officerID))
}

func unwrapMaster(pass, salt, wrapped []byte, p KDFParams, consoleID, officerID string) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	k := passphraseKey(pass, salt, p)
	defer clear(k)
	return open(k, wrapped, officerAAD(consoleID, officerID))
}

func wrapWith(master []byte, info string, plaintext, ad []byte) []byte {
	k := subkey(master, info)
	defer clear(k)
	return seal(k, plaintext, ad)
}

func unwrapWith(master []byte, info string, wrapped, ad []byte) ([]byte, error) {
	k := subkey(master, info)
	defer clear(k)
	return open(k, wrapped, ad)
}

const (
	infoReleaseSecret = "keyholder-wrap-release-secret-v1"
	infoConsoleKey    = "keyholder-wrap-console-key-v1"
	infoBackup        = "keyholder-backup-stream-v1"
)
