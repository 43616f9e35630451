package p384

import (
	"math/big"
	"math/bits"
)

// fe is an element of the P-384 base field GF(p) in Montgomery form: the
// six little-endian words hold x·2^384 mod p, always fully reduced (below
// p), so two elements are equal exactly when their words are.
type fe [6]uint64

// p is the field prime 2^384 − 2^128 − 2^96 + 2^32 − 1.
var p = fe{
	0x00000000ffffffff, 0xffffffff00000000, 0xfffffffffffffffe,
	0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff,
}

// pInv is −p⁻¹ mod 2^64.
const pInv = 0x100000001

var (
	pBig = new(big.Int).SetBytes(feBytes(&p))
	// feOne is 1 (2^384 mod p); feR2 is 2^768 mod p, which feMul by turns
	// an integer into its Montgomery form.
	feOne = limbs(new(big.Int).Mod(new(big.Int).Lsh(big.NewInt(1), 384), pBig))
	feR2  = limbs(new(big.Int).Mod(new(big.Int).Lsh(big.NewInt(1), 768), pBig))
)

// useADX selects the assembly multiplication (amd64 with BMI2 and ADX);
// the tests turn it off to run everything through feMulGeneric too.
var useADX = haveADX

// feSqr sets z = x².
func feSqr(z, x *fe) { feMul(z, x, x) }

// feMulGeneric is feMul in Go: the same word-by-word Montgomery
// multiplication as the assembly.
func feMulGeneric(z, x, y *fe) {
	var t [7]uint64 // t < 2p between rounds: six words and a bit
	for i := 0; i < 6; i++ {
		// t += x[i]·y
		var c, cc uint64
		for j := 0; j < 6; j++ {
			hi, lo := bits.Mul64(x[i], y[j])
			lo, cc = bits.Add64(lo, t[j], 0)
			hi += cc
			t[j], cc = bits.Add64(lo, c, 0)
			c = hi + cc
		}
		var t7 uint64
		t[6], t7 = bits.Add64(t[6], c, 0)
		// t = (t + m·p)/2^64, with m making the low word zero
		m := t[0] * pInv
		hi, lo := bits.Mul64(m, p[0])
		_, cc = bits.Add64(lo, t[0], 0)
		c = hi + cc
		for j := 1; j < 6; j++ {
			hi, lo := bits.Mul64(m, p[j])
			lo, cc = bits.Add64(lo, t[j], 0)
			hi += cc
			t[j-1], cc = bits.Add64(lo, c, 0)
			c = hi + cc
		}
		t[5], cc = bits.Add64(t[6], c, 0)
		t[6] = t7 + cc
	}
	var d fe
	var b uint64
	for j := 0; j < 6; j++ {
		d[j], b = bits.Sub64(t[j], p[j], b)
	}
	if _, b = bits.Sub64(t[6], 0, b); b != 0 {
		copy(z[:], t[:6]) // t < p
	} else {
		*z = d
	}
}

// feAdd sets z = x + y. The final choice is by mask, not by a branch the
// CPU would mispredict half the time.
func feAdd(z, x, y *fe) {
	var s, d fe
	var c, b uint64
	for j := 0; j < 6; j++ {
		s[j], c = bits.Add64(x[j], y[j], c)
	}
	for j := 0; j < 6; j++ {
		d[j], b = bits.Sub64(s[j], p[j], b)
	}
	// Keep s if s < p: the subtraction borrowed and the sum did not carry.
	_, b = bits.Sub64(c, 0, b)
	keep := -b
	for j := 0; j < 6; j++ {
		z[j] = s[j]&keep | d[j]&^keep
	}
}

// feSub sets z = x − y.
func feSub(z, x, y *fe) {
	var d fe
	var b, c uint64
	for j := 0; j < 6; j++ {
		d[j], b = bits.Sub64(x[j], y[j], b)
	}
	mask := -b // add p back if x < y
	for j := 0; j < 6; j++ {
		z[j], c = bits.Add64(d[j], p[j]&mask, c)
	}
}

// feNeg sets z = −x.
func feNeg(z, x *fe) { feSub(z, &fe{}, x) }

func (x *fe) isZero() bool {
	return x[0]|x[1]|x[2]|x[3]|x[4]|x[5] == 0
}

// feInv sets z = x⁻¹ (0 for 0), as x^(p−2).
func feInv(z, x *fe) {
	e := p
	e[0] -= 2
	r := feOne
	for i := 383; i >= 0; i-- {
		feSqr(&r, &r)
		if e[i/64]>>(i%64)&1 != 0 {
			feMul(&r, &r, x)
		}
	}
	*z = r
}

// feFromBig sets z to v, which must be in [0, p); it reports whether it was.
func feFromBig(z *fe, v *big.Int) bool {
	if v.Sign() < 0 || v.Cmp(pBig) >= 0 {
		return false
	}
	l := limbs(v)
	feMul(z, &l, &feR2)
	return true
}

// toBig returns x as an integer in [0, p).
func (x *fe) toBig() *big.Int {
	var v fe
	feMul(&v, x, &fe{1})
	return new(big.Int).SetBytes(feBytes(&v))
}

// limbs returns the words of v, which must be below 2^384.
func limbs(v *big.Int) fe {
	var b [48]byte
	v.FillBytes(b[:])
	var l fe
	for j := 0; j < 6; j++ {
		for k := 0; k < 8; k++ {
			l[j] |= uint64(b[47-8*j-k]) << (8 * k)
		}
	}
	return l
}

// feBytes returns the words of l as a big-endian 48-byte string.
func feBytes(l *fe) []byte {
	b := make([]byte, 48)
	for j := 0; j < 6; j++ {
		for k := 0; k < 8; k++ {
			b[47-8*j-k] = byte(l[j] >> (8 * k))
		}
	}
	return b
}
