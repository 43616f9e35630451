// Package p384 verifies ECDSA P-384 signatures of one key many times,
// faster than crypto/ecdsa, with a table of multiples of the key computed
// once.
//
// A verification computes u1·G + u2·Q. crypto/ecdsa has precomputed
// multiples of the generator G, so u1·G costs 96 point additions (and
// constant-time table scans); u2·Q, for an arbitrary key Q, costs 384
// doublings and 96 additions and is about three quarters of a verification. A report-signing key (a chip's VCEK or
// a VLEK) signs every report of every guest on that chip, so the console
// verifies with the same few keys over and over: a per-key table of
// multiples [d·32^i]Q turns u2·Q into 77 additions, and a wider shared
// table for G turns u1·G into 48.
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

const scalarLen = 48

// Window widths: a key's table has ceil(384/keyWindow) rows of
// 2^keyWindow-1 multiples (5 bits: 77 rows of 31, about 420 KiB); the
// generator's one shared table uses 8-bit windows (48 rows of 255, about
// 2 MiB, made once). A verification then costs 77 + 48 point additions
// where crypto/ecdsa's costs 96 additions for G plus 384 doublings and 96
// additions for Q.
const (
	keyWindow = 5
	genWindow = 8
)

// PublicKey is a P-384 public key with its table.
type PublicKey struct {
	table table
}

// table holds [d·2^(w·i)]P at rows[i][d-1].
type table struct {
	w    int
	rows [][]*nistec.P384Point
}

// TableBytes is about what a PublicKey holds in memory.
const TableBytes = (384 + keyWindow - 1) / keyWindow * (1<<keyWindow - 1) * (3*48 + 4*8)

// NewPublicKey makes the table for pub (about 2,700 point operations).
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
	return &PublicKey{table: newTable(q, keyWindow)}, nil
}

// generator is the table for G, shared by every key (made on first use).
// nistec's own generator table is selected from in constant time, which a
// verification does not need.
var generator = sync.OnceValue(func() table {
	return newTable(nistec.NewP384Point().SetGenerator(), genWindow)
})

func newTable(q *nistec.P384Point, w int) table {
	t := table{w: w, rows: make([][]*nistec.P384Point, (8*scalarLen+w-1)/w)}
	base := nistec.NewP384Point().Set(q)
	for i := range t.rows {
		row := make([]*nistec.P384Point, 1<<w-1)
		row[0] = nistec.NewP384Point().Set(base)
		for j := 1; j < len(row); j++ {
			row[j] = nistec.NewP384Point().Add(row[j-1], base)
		}
		t.rows[i] = row
		for range w {
			base.Double(base)
		}
	}
	return t
}

// add adds scalar·(the table's point) to p; scalar is big-endian.
func (t table) add(p *nistec.P384Point, scalar *[scalarLen]byte) {
	for i := range t.rows {
		if d := digit(scalar, i*t.w, t.w); d != 0 {
			p.Add(p, t.rows[i][d-1])
		}
	}
}

// digit returns bits [bit, bit+w) of the big-endian scalar (w <= 8).
func digit(scalar *[scalarLen]byte, bit, w int) int {
	var v int
	for k := 0; k < w; k++ {
		b := bit + k
		if b >= 8*scalarLen {
			break
		}
		v |= int(scalar[scalarLen-1-b/8]>>(b%8)&1) << k
	}
	return v
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
	k.table.add(p, &b2)
	x, err := p.BytesX() // fails for the point at infinity
	if err != nil {
		return false
	}
	v := new(big.Int).SetBytes(x)
	v.Mod(v, order)
	return v.Cmp(r) == 0
}
