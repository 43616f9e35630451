package wire

import (
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
)

// The HPKE cipher suite of the release protocol.
var (
	kem  = hpke.MLKEM768X25519()
	kdf  = hpke.HKDFSHA256()
	aead = hpke.AES256GCM()
)

// sealDomain separates the HPKE info of a release from anything else.
const sealDomain = "keyholder-release-v1 seal"

// ErrOpen means a sealed secret did not open: wrong key, or sealed for
// another request, volume or generation, or altered on the way.
var ErrOpen = errors.New("sealed secret does not open with this key for this request")

// Info returns the HPKE info string that binds a sealed secret to its
// request, volume and generation.
func Info(requestID, volumeID string, generation uint32) []byte {
	b := appendLP(nil, []byte(sealDomain))
	b = appendLP(b, []byte(requestID))
	b = appendLP(b, []byte(volumeID))
	return binary.BigEndian.AppendUint32(b, generation)
}

// NewKeyPair makes an ephemeral ML-KEM-768+X25519 key pair for one release
// and returns it with its public key's serialisation.
func NewKeyPair() (hpke.PrivateKey, []byte, error) {
	k, err := kem.GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("make HPKE key: %w", err)
	}
	return k, k.PublicKey().Bytes(), nil
}

// Seal seals secret to the serialised public key pub for one request,
// volume and generation.
func Seal(pub []byte, requestID, volumeID string, generation uint32, secret []byte) ([]byte, error) {
	pk, err := ParsePublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return SealTo(pk, requestID, volumeID, generation, secret)
}

// SealTo is Seal to a key ParsePublicKey returned. Parsing the ML-KEM half
// expands its matrix (SHAKE-128, some 25 µs here), so a request's key is
// parsed once, when it is checked, and sealed to as often as needed.
func SealTo(pk hpke.PublicKey, requestID, volumeID string, generation uint32, secret []byte) ([]byte, error) {
	if pk == nil || pk.KEM().ID() != kem.ID() {
		return nil, fmt.Errorf("seal: not an ML-KEM-768+X25519 public key")
	}
	out, err := hpke.Seal(pk, kdf, aead, Info(requestID, volumeID, generation), secret)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return out, nil
}

// Open opens a value made by Seal. The caller owns (and should wipe) the
// returned secret.
func Open(k hpke.PrivateKey, requestID, volumeID string, generation uint32, sealed []byte) ([]byte, error) {
	if k.KEM().ID() != kem.ID() {
		return nil, fmt.Errorf("open: HPKE key is for KEM %#04x, want %#04x", k.KEM().ID(), kem.ID())
	}
	pt, err := hpke.Open(k, kdf, aead, Info(requestID, volumeID, generation), sealed)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// CheckPublicKey reports whether pub is a valid serialised
// ML-KEM-768+X25519 public key (Seal to it cannot fail for its shape).
func CheckPublicKey(pub []byte) error {
	_, err := ParsePublicKey(pub)
	return err
}

// ParsePublicKey parses a serialised ML-KEM-768+X25519 public key.
func ParsePublicKey(pub []byte) (hpke.PublicKey, error) {
	pk, err := kem.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("HPKE public key: %w", err)
	}
	return pk, nil
}
