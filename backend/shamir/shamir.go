// Package shamir splits a secret into M-of-N shares with Shamir's secret
// sharing over GF(2^8) and writes each share as printable text with a
// checksum, so a typo is found before shares are combined.
//
// Arithmetic is in GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1 (0x11b),
// done with shifts and masks rather than log tables, so its timing does not
// depend on secret bytes. Each byte of the secret is the constant term of
// its own random polynomial of degree M-1; share x (1..N) holds the values
// at x. Any M shares give the secret by Lagrange interpolation at 0; fewer
// give nothing about it.
//
// The text form (format v1) is "KHS1-" followed by the RFC 4648 base32
// (no padding) of
//
//	version(1)=1 || set(4) || threshold(1) || x(1) || len(1) || value(len) || check(4)
//
// in groups of five characters joined by "-", where check is the first four
// bytes of SHA-256("keyholder-share-v1" || the bytes before it). set names
// one split, so shares of different splits are never mixed. Parse accepts
// lower case, spaces and the look-alikes 0, 1 and 8 for O, I and B.
//
// Out of scope: verifiable secret sharing (a dishonest share holder can make
// combining yield a wrong secret; callers check the result, as custody does
// with its key check value).
package shamir

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Errors that callers branch on.
var (
	ErrChecksum     = errors.New("share checksum does not match (a typo?)")
	ErrFormat       = errors.New("not a Keyholder recovery share")
	ErrTooFewShares = errors.New("not enough shares")
	ErrMismatch     = errors.New("shares belong to different splits")
	ErrDuplicate    = errors.New("the same share was given twice")
	ErrParams       = errors.New("invalid split parameters")
)

// MaxSecret is the longest secret Split accepts.
const MaxSecret = 64

// Share is one share of a split secret.
type Share struct {
	Set       [4]byte // identifies the split
	Threshold int     // M: shares needed
	X         int     // this share's index, 1..255
	Value     []byte  // the polynomials' values at X
}

// Split divides secret into n shares of which any m recover it. rnd is the
// randomness (nil means crypto/rand); set names the split.
func Split(secret []byte, m, n int, set [4]byte, rnd io.Reader) ([]Share, error) {
	if len(secret) == 0 || len(secret) > MaxSecret {
		return nil, fmt.Errorf("%w: secret must be 1-%d bytes", ErrParams, MaxSecret)
	}
	if m < 2 || n < m || n > 255 {
		return nil, fmt.Errorf("%w: need 2 <= M <= N <= 255 (M=%d, N=%d)", ErrParams, m, n)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	coef := make([]byte, m) // coef[0] is the secret byte
	defer clear(coef)
	shares := make([]Share, n)
	for i := range shares {
		shares[i] = Share{Set: set, Threshold: m, X: i + 1, Value: make([]byte, len(secret))}
	}
	for b, s := range secret {
		coef[0] = s
		if _, err := io.ReadFull(rnd, coef[1:]); err != nil {
			return nil, fmt.Errorf("read randomness: %w", err)
		}
		for i := range shares {
			shares[i].Value[b] = eval(coef, byte(i+1))
		}
	}
	return shares, nil
}

// eval returns the polynomial with coefficients coef at x (Horner).
func eval(coef []byte, x byte) byte {
	var y byte
	for i := len(coef) - 1; i >= 0; i-- {
		y = mul(y, x) ^ coef[i]
	}
	return y
}

// Combine recovers the secret from at least Threshold shares of one split.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, fmt.Errorf("%w: none given", ErrTooFewShares)
	}
	first := shares[0]
	seen := map[int]bool{}
	for _, s := range shares {
		if s.Set != first.Set || s.Threshold != first.Threshold || len(s.Value) != len(first.Value) {
			return nil, ErrMismatch
		}
		if s.X < 1 || s.X > 255 || len(s.Value) == 0 {
			return nil, ErrFormat
		}
		if seen[s.X] {
			return nil, fmt.Errorf("%w (share %d)", ErrDuplicate, s.X)
		}
		seen[s.X] = true
	}
	m := first.Threshold
	if len(shares) < m {
		return nil, fmt.Errorf("%w: %d of the %d needed", ErrTooFewShares, len(shares), m)
	}
	use := shares[:m]
	secret := make([]byte, len(first.Value))
	for i, si := range use {
		// Lagrange basis at 0: prod_{j!=i} x_j / (x_j - x_i); minus is xor.
		num, den := byte(1), byte(1)
		for j, sj := range use {
			if i == j {
				continue
			}
			num = mul(num, byte(sj.X))
			den = mul(den, byte(sj.X)^byte(si.X))
		}
		l := mul(num, inv(den))
		for b := range secret {
			secret[b] ^= mul(si.Value[b], l)
		}
	}
	return secret, nil
}

// mul multiplies in GF(2^8) mod 0x11b without secret-dependent branches.
func mul(a, b byte) byte {
	var p byte
	for i := 0; i < 8; i++ {
		p ^= a & -(b & 1)
		hi := a >> 7
		a = a<<1 ^ (0x1b & -hi)
		b >>= 1
	}
	return p
}

// inv returns a^-1 = a^254 (inv(0) = 0, never needed: x values differ).
func inv(a byte) byte {
	r := byte(1)
	for _, bit := range []int{1, 1, 1, 1, 1, 1, 1, 0} { // 254 = 0b11111110, high bit first
		r = mul(r, r)
		if bit == 1 {
			r = mul(r, a)
		}
	}
	return r
}

const (
	prefix   = "KHS1-"
	version  = 1
	checkTag = "keyholder-share-v1"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// String returns the share's printable text form.
func (s Share) String() string {
	b := []byte{version}
	b = append(b, s.Set[:]...)
	b = append(b, byte(s.Threshold), byte(s.X), byte(len(s.Value)))
	b = append(b, s.Value...)
	b = append(b, checksum(b)...)
	enc := b32.EncodeToString(b)
	clear(b)
	var sb strings.Builder
	sb.WriteString(prefix)
	for i := 0; i < len(enc); i += 5 {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(enc[i:min(i+5, len(enc))])
	}
	return sb.String()
}

func checksum(b []byte) []byte {
	h := sha256.New()
	h.Write([]byte(checkTag))
	h.Write(b)
	return h.Sum(nil)[:4]
}

// maxText bounds the text Parse looks at.
const maxText = 1024

// Parse reads a share's text form and checks its checksum.
func Parse(text string) (Share, error) {
	if len(text) > maxText {
		return Share{}, fmt.Errorf("%w: too long", ErrFormat)
	}
	var sb strings.Builder
	for _, r := range strings.ToUpper(text) {
		switch {
		case r == ' ' || r == '-' || r == '\t' || r == '\n' || r == '\r':
		case r == '0':
			sb.WriteByte('O')
		case r == '1':
			sb.WriteByte('I')
		case r == '8':
			sb.WriteByte('B')
		case (r >= 'A' && r <= 'Z') || (r >= '2' && r <= '7'):
			sb.WriteRune(r)
		default:
			return Share{}, fmt.Errorf("%w: unexpected character %q", ErrFormat, r)
		}
	}
	t := sb.String()
	// "KHS1" normalised: the 1 became I.
	if !strings.HasPrefix(t, "KHSI") {
		return Share{}, fmt.Errorf("%w: it must start with %s", ErrFormat, prefix)
	}
	b, err := b32.DecodeString(t[4:])
	if err != nil {
		return Share{}, fmt.Errorf("%w: a character is missing or extra", ErrChecksum)
	}
	defer clear(b)
	// The last character carries unused bits; a typo there must not pass.
	if b32.EncodeToString(b) != t[4:] {
		return Share{}, fmt.Errorf("%w: the last group is wrong", ErrChecksum)
	}
	const head = 1 + 4 + 3
	if len(b) < head+1+4 {
		return Share{}, fmt.Errorf("%w: too short", ErrChecksum)
	}
	body, check := b[:len(b)-4], b[len(b)-4:]
	if subtle.ConstantTimeCompare(checksum(body), check) != 1 {
		return Share{}, ErrChecksum
	}
	if body[0] != version {
		return Share{}, fmt.Errorf("%w: share format version %d", ErrFormat, body[0])
	}
	n := int(body[7])
	if len(body) != head+n || n == 0 || n > MaxSecret {
		return Share{}, fmt.Errorf("%w: bad length", ErrFormat)
	}
	s := Share{Threshold: int(body[5]), X: int(body[6]), Value: append([]byte(nil), body[head:]...)}
	copy(s.Set[:], body[1:5])
	if s.Threshold < 2 || s.X < 1 {
		return Share{}, fmt.Errorf("%w: bad threshold or index", ErrFormat)
	}
	return s, nil
}
