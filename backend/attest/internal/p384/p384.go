// Package p384 verifies ECDSA P-384 signatures of one key many times,
// faster than crypto/ecdsa, with a table of multiples of the key computed
// once.
//
// A verification computes u1·G + u2·Q. crypto/ecdsa has precomputed
// multiples of the generator G, so u1·G costs 96 point additions (and
// constant-time table scans); u2·Q, for an arbitrary key Q, costs 384
// doublings and 96 additions and is about three quarters of a
// verification. A report-signing key (a chip's VCEK or a VLEK) signs every
// report of every guest on that chip, so the console verifies with the
// same few keys over and over: a per-key table of affine multiples
// [d·128^i]Q (d = 1…64) turns u2·Q into 55 additions of a table point or
// its negative (8 multiplications and 3 squarings each) to a Jacobian
// accumulator, and a wider shared table for G ([d·1024^i]G, d = 1…512)
// turns u1·G into 39. The scalars are written in signed digits, so a table
// holds only half the multiples: a point's negative costs a field
// negation. The sum is never converted back to affine coordinates:
// x/z² ≡ r (mod n) is checked as x = r·z² or, when r + n < p,
// x = (r+n)·z².
//
// The field arithmetic is this package's own (fe.go): six-word Montgomery
// form, with multiplication in amd64 assembly using MULX, ADCX and ADOX
// where the CPU has them (BMI2 and ADX) and in Go otherwise.
//
// Both scalars, the key and the signature are public, so nothing here is
// constant time: tables are indexed directly and the exceptional cases of
// the addition formulas are branched on.
//
// The result is checked against crypto/ecdsa on random, malformed and
// constructed signatures in the tests and by a fuzz target, with both the
// assembly and the Go arithmetic.
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

// pMinusN is p − n: r + n < p exactly when r < p − n.
var pMinusN = new(big.Int).Sub(pBig, order)

const scalarLen = 48

// Window widths of the signed digits: a key's table has 55 rows of 64
// affine points (96 bytes each: 330 KiB); the generator's one shared table
// has 39 rows of 512 (1.9 MiB, made once). Narrower key windows save
// memory but cost more additions: 6 bits would take 195 KiB and 65.
const (
	keyWindow = 7
	genWindow = 10
)

// rows is how many signed w-bit digits a scalar below 2^384 takes (one
// more bit than unsigned ones: the top digit may carry).
func rows(w int) int { return (8*scalarLen + w) / w }

// PublicKey is a P-384 public key with its table.
type PublicKey struct {
	table table
}

// table holds [d·2^(w·i)]P at points[i·2^(w−1) + d−1] for d = 1…2^(w−1).
type table struct {
	w      int
	points []affine
}

// TableBytes is about what a PublicKey holds in memory.
const TableBytes = (8*scalarLen + keyWindow) / keyWindow * (1 << (keyWindow - 1)) * 2 * 6 * 8

// NewPublicKey makes the table for pub (about 390 doublings, 3,500
// additions and two inversions).
func NewPublicKey(pub *ecdsa.PublicKey) (*PublicKey, error) {
	if pub == nil || pub.Curve != elliptic.P384() {
		return nil, errors.New("p384: not a P-384 key")
	}
	enc, err := pub.Bytes()
	if err != nil {
		return nil, err
	}
	// nistec checks that the point is on the curve (and not infinity).
	if _, err := nistec.NewP384Point().SetBytes(enc); err != nil {
		return nil, err
	}
	var q affine
	if len(enc) != 1+2*scalarLen ||
		!feFromBig(&q.x, new(big.Int).SetBytes(enc[1:1+scalarLen])) ||
		!feFromBig(&q.y, new(big.Int).SetBytes(enc[1+scalarLen:])) {
		return nil, errors.New("p384: bad key encoding")
	}
	return &PublicKey{table: newTable(&q, keyWindow)}, nil
}

// generator is the table for G, shared by every key (made on first use).
var generator = sync.OnceValue(func() table {
	params := elliptic.P384().Params()
	var g affine
	feFromBig(&g.x, params.Gx)
	feFromBig(&g.y, params.Gy)
	return newTable(&g, genWindow)
})

func newTable(q *affine, w int) table {
	nrows, half := rows(w), 1<<(w-1)
	// The first point of each row, [2^(w·i)]Q, by doubling.
	bases := make([]jacobian, nrows)
	var acc jacobian
	acc.addAffine(q, false)
	for i := range bases {
		bases[i] = acc
		for range w {
			acc.double(&acc)
		}
	}
	affBases := make([]affine, nrows)
	normalize(affBases, bases)
	// The rest of each row by adding its first point.
	all := make([]jacobian, nrows*half)
	for i := range nrows {
		row := all[i*half : (i+1)*half]
		row[0].addAffine(&affBases[i], false)
		for d := 1; d < half; d++ {
			row[d] = row[d-1]
			row[d].addAffine(&affBases[i], false)
		}
	}
	t := table{w: w, points: make([]affine, len(all))}
	normalize(t.points, all)
	return t
}

// digits are a scalar's signed digits for one table.
type digits struct {
	t table
	n int
	d [8*scalarLen + 1]int
}

func (t table) digits(scalar *[scalarLen]byte) *digits {
	ds := &digits{t: t}
	ds.n = recode(scalar, t.w, ds.d[:])
	return ds
}

// entry returns the table point for digit i, or nil if the digit is 0.
func (ds *digits) entry(i int) (pt *affine, neg bool) {
	d, half := ds.d[i], 1<<(ds.t.w-1)
	switch {
	case d > 0:
		return &ds.t.points[i*half+d-1], false
	case d < 0:
		return &ds.t.points[i*half-d-1], true
	}
	return nil, false
}

// touch loads the first and last word of every table point the digits
// use and returns a value that depends on them. The loads are
// independent, so their cache misses overlap, where the additions would
// each wait for their own: with many keys in use, tables are mostly out of
// the nearer caches. (Not inlined, so that the loads stay though the
// caller drops the value.)
//
//go:noinline
func (ds *digits) touch() uint64 {
	var sum uint64
	for i := range ds.n {
		if pt, _ := ds.entry(i); pt != nil {
			sum += pt.x[0] ^ pt.y[5]
		}
	}
	return sum
}

// add adds the scalar times the table's point to p.
func (ds *digits) add(p *jacobian) {
	for i := range ds.n {
		if pt, neg := ds.entry(i); pt != nil {
			p.addAffine(pt, neg)
		}
	}
}

// add adds scalar·(the table's point) to p; scalar is big-endian.
func (t table) add(p *jacobian, scalar *[scalarLen]byte) {
	t.digits(scalar).add(p)
}

// recode writes the signed w-bit digits of the big-endian scalar to
// digits, least significant first, each in [−2^(w−1), 2^(w−1)], and
// returns how many there are (rows(w)); the scalar is Σ digits[i]·2^(w·i).
func recode(scalar *[scalarLen]byte, w int, digits []int) int {
	n := rows(w)
	carry := 0
	for i := range n {
		d := digit(scalar, i*w, w) + carry
		carry = 0
		if d > 1<<(w-1) {
			d -= 1 << w
			carry = 1
		}
		digits[i] = d
	}
	return n
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
	d1, d2 := generator().digits(&b1), k.table.digits(&b2)
	d1.touch()
	d2.touch()
	var p jacobian // the point at infinity
	d1.add(&p)
	d2.add(&p)
	if p.z.isZero() {
		return false
	}
	// x/z² mod n = r, with x/z² in [0, p) and p < 2n: x/z² is r or r + n.
	var zz, rz fe
	feSqr(&zz, &p.z)
	feFromBig(&rz, r) // r < n < p
	feMul(&rz, &rz, &zz)
	if rz == p.x {
		return true
	}
	if r.Cmp(pMinusN) >= 0 {
		return false
	}
	feFromBig(&rz, new(big.Int).Add(r, order))
	feMul(&rz, &rz, &zz)
	return rz == p.x
}
