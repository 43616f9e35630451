// Package p384 verifies ECDSA P-384 signatures of one key many times,
// faster than crypto/ecdsa, with a table of multiples of the key computed
// once.
//
// A verification computes u1·G + u2·Q. crypto/ecdsa has precomputed
// multiples of the generator G, so u1·G costs 96 point additions (and
// constant-time table scans); u2·Q, for an arbitrary key Q, costs 384
// doublings and 96 additions and is about three quarters of a verification. A report-signing key (a chip's VCEK or
// a VLEK) signs every report of every guest on that chip, so the console
// verifies with the same few keys over and over: a per-key table
// [d·16^i]Q (d = 1..15, i = 0..95) turns u2·Q into 96 additions as well.
// Both scalars and the signature are public, so the table is indexed
// directly (no constant-time selection is needed or done).
//
// The result is checked against crypto/ecdsa on random and malformed
// signatures in the tests and by a fuzz target.
package p384

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"math/big"
	"sync"

	"filippo.io/nistec"
)

// order is n, the order of the P-384 group.
var order = elliptic.P384().Params().N

const (
	scalarLen = 48
	windows   = 2 * scalarLen // 4-bit windows of a 384-bit scalar
)

// PublicKey is a P-384 public key with its table.
type PublicKey struct {
	table [windows][15]*nistec.P384Point
}

// TableBytes is about what a PublicKey holds in memory.
const TableBytes = windows * 15 * (3*48 + 4*8)

// NewPublicKey makes the table for pub (about 1,700 point operations).
func NewPublicKey(pub *ecdsa.PublicKey) (*PublicKey, error) {
	if pub == nil || pub.Curve != elliptic.P384() {
		return nil, errors.New("p384: not a P-384 key")
	}
	enc, err := pub.Bytes()
	if err != nil {
		return nil, err
	}
	q, err := nistec.NewP384Point().SetBytes(enc)
	if err != nil {
		return nil, err
	}
	return newTable(q), nil
}

// generator is the same table for G, shared by every key (made on first
// use). nistec's own generator table is selected from in constant time,
// which a verification does not need.
var generator = sync.OnceValue(func() *PublicKey {
	return newTable(nistec.NewP384Point().SetGenerator())
})

func newTable(q *nistec.P384Point) *PublicKey {
	k := &PublicKey{}
	base := nistec.NewP384Point().Set(q)
	for i := 0; i < windows; i++ {
		k.table[i][0] = nistec.NewP384Point().Set(base)
		for j := 1; j < 15; j++ {
			k.table[i][j] = nistec.NewP384Point().Add(k.table[i][j-1], base)
		}
		for range 4 {
			base.Double(base)
		}
	}
	return k
}

// add adds scalar·(the table's point) to p.
func (k *PublicKey) add(p *nistec.P384Point, scalar *[scalarLen]byte) {
	for i, c := range scalar {
		hi, lo := c>>4, c&15
		if hi != 0 {
			p.Add(p, k.table[windows-1-2*i][hi-1])
		}
		if lo != 0 {
			p.Add(p, k.table[windows-2-2*i][lo-1])
		}
	}
}

// Verify reports whether (r, s) is a valid signature of hash (a SHA-384
// digest; a longer hash is truncated to 384 bits as in crypto/ecdsa) under
// the key.
func (k *PublicKey) Verify(hash []byte, r, s *big.Int) bool {
	if r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(order) >= 0 || s.Cmp(order) >= 0 {
		return false
	}
	if len(hash) > scalarLen {
		hash = hash[:scalarLen]
	}
	e := new(big.Int).SetBytes(hash)
	w := new(big.Int).ModInverse(s, order)
	if w == nil {
		return false
	}
	u1 := new(big.Int).Mul(e, w)
	u1.Mod(u1, order)
	u2 := new(big.Int).Mul(r, w)
	u2.Mod(u2, order)

	var b1, b2 [scalarLen]byte
	u1.FillBytes(b1[:])
	u2.FillBytes(b2[:])
	p := nistec.NewP384Point() // the identity
	generator().add(p, &b1)
	k.add(p, &b2)
	x, err := p.BytesX() // fails for the point at infinity
	if err != nil {
		return false
	}
	v := new(big.Int).SetBytes(x)
	v.Mod(v, order)
	return v.Cmp(r) == 0
}
