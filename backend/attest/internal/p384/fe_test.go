package p384

import (
	"crypto/rand"
	"math/big"
	"testing"
)

// forEachImpl runs f with the assembly multiplication (where this CPU has
// it) and with the pure-Go one, restoring the choice afterwards.
func forEachImpl(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	defer func(old bool) { useADX = old }(useADX)
	if haveADX {
		useADX = true
		t.Run("adx", f)
	} else {
		t.Log("this CPU has no BMI2 and ADX: only the pure-Go path runs")
	}
	useADX = false
	t.Run("generic", f)
}

var rInv = new(big.Int).ModInverse(new(big.Int).Lsh(big.NewInt(1), 384), pBig)

// edgeValues are words of field elements (below p) at the edges: 0, 1,
// p−1, all-ones words, single bits, 2^384 mod p and its inverse.
func edgeValues() []*big.Int {
	one := big.NewInt(1)
	pm := func(d int64) *big.Int { return new(big.Int).Sub(pBig, big.NewInt(d)) }
	vs := []*big.Int{
		big.NewInt(0), one, big.NewInt(2), big.NewInt(3), pm(1), pm(2), pm(3),
		new(big.Int).Rsh(pBig, 1), new(big.Int).Add(new(big.Int).Rsh(pBig, 1), one),
		new(big.Int).Mod(new(big.Int).Lsh(one, 384), pBig), new(big.Int).Set(rInv),
		new(big.Int).SetUint64(^uint64(0)),
		new(big.Int).Sub(new(big.Int).Lsh(one, 128), one),
		new(big.Int).Sub(new(big.Int).Lsh(one, 383), one),
		new(big.Int).Lsh(new(big.Int).Sub(new(big.Int).Lsh(one, 192), one), 192), // top three words all ones
		new(big.Int).Lsh(new(big.Int).Sub(new(big.Int).Lsh(one, 256), one), 64),  // middle four words all ones
		new(big.Int).Sub(pBig, new(big.Int).Lsh(one, 64)),
		new(big.Int).Sub(pBig, new(big.Int).Lsh(one, 32)),
	}
	for _, k := range []uint{31, 32, 63, 64, 95, 96, 127, 128, 191, 255, 319, 320, 382, 383} {
		vs = append(vs, new(big.Int).Lsh(one, k))
	}
	return vs
}

func randValues(n int) []*big.Int {
	vs := make([]*big.Int, n)
	for i := range vs {
		vs[i], _ = rand.Int(rand.Reader, pBig)
	}
	return vs
}

func rawFe(v *big.Int) fe { return limbs(v) }

func feBig(x *fe) *big.Int { return new(big.Int).SetBytes(feBytes(x)) }

// checkField compares feMul, feSqr, feAdd, feSub, feNeg and feInv on the
// words a and b with math/big.
func checkField(t *testing.T, a, b *big.Int) {
	t.Helper()
	x, y := rawFe(a), rawFe(b)
	mod := func(v *big.Int) *big.Int { return v.Mod(v, pBig) }
	check := func(op string, got fe, want *big.Int) {
		t.Helper()
		if g := feBig(&got); g.Cmp(want) != 0 {
			t.Fatalf("%s(%#x, %#x) = %#x, want %#x", op, a, b, g, want)
		}
	}
	var z fe
	feMul(&z, &x, &y)
	check("mul", z, mod(new(big.Int).Mul(new(big.Int).Mul(a, b), rInv)))
	z = x
	feMul(&z, &z, &y) // aliased result
	check("mul in place", z, mod(new(big.Int).Mul(new(big.Int).Mul(a, b), rInv)))
	feSqr(&z, &x)
	check("sqr", z, mod(new(big.Int).Mul(new(big.Int).Mul(a, a), rInv)))
	feAdd(&z, &x, &y)
	check("add", z, mod(new(big.Int).Add(a, b)))
	feSub(&z, &x, &y)
	check("sub", z, mod(new(big.Int).Sub(a, b)))
	feNeg(&z, &x)
	check("neg", z, mod(new(big.Int).Neg(a)))
	if a.Sign() != 0 {
		// In Montgomery form a stands for a·R⁻¹, whose inverse is
		// a⁻¹·R, stored as a⁻¹·R².
		feInv(&z, &x)
		inv := new(big.Int).ModInverse(a, pBig)
		check("inv", z, mod(inv.Mul(inv, new(big.Int).Lsh(big.NewInt(1), 768))))
	}
}

func TestFieldAgainstBig(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		vs := append(edgeValues(), randValues(40)...)
		for _, a := range vs {
			for _, b := range vs {
				checkField(t, a, b)
			}
		}
	})
}

func TestFieldConversions(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		for _, v := range append(edgeValues(), randValues(20)...) {
			var x fe
			if !feFromBig(&x, v) {
				t.Fatalf("feFromBig refused %#x", v)
			}
			if got := x.toBig(); got.Cmp(v) != 0 {
				t.Fatalf("round trip of %#x gave %#x", v, got)
			}
		}
		for _, v := range []*big.Int{pBig, big.NewInt(-1), new(big.Int).Lsh(big.NewInt(1), 384)} {
			var x fe
			if feFromBig(&x, v) {
				t.Fatalf("feFromBig took %#x", v)
			}
		}
		if got := feOne.toBig(); got.Cmp(big.NewInt(1)) != 0 {
			t.Fatalf("feOne is %#x", got)
		}
	})
}

// FuzzField: the field operations on any two elements agree with math/big
// on both paths (the inputs are reduced mod p first).
func FuzzField(f *testing.F) {
	f.Add([]byte{}, []byte{1})
	f.Add(feBytes(&fe{0xfffffffe, 0xffffffff00000000, 0xfffffffffffffffe, ^uint64(0), ^uint64(0), ^uint64(0)}), []byte{0xff, 0xff})
	f.Add(feBytes(&fe{^uint64(0), ^uint64(0), ^uint64(0), 0, 0, 0}), feBytes(&fe{0, 0, 0, ^uint64(0), ^uint64(0), 0x7fffffffffffffff}))
	f.Fuzz(func(t *testing.T, ab, bb []byte) {
		a := new(big.Int).SetBytes(ab)
		b := new(big.Int).SetBytes(bb)
		a.Mod(a, pBig)
		b.Mod(b, pBig)
		defer func(old bool) { useADX = old }(useADX)
		for _, asm := range []bool{false, true} {
			if asm && !haveADX {
				continue
			}
			useADX = asm
			checkField(t, a, b)
		}
	})
}

func BenchmarkFeMul(b *testing.B) {
	x, y := rawFe(randValues(1)[0]), rawFe(randValues(1)[0])
	defer func(old bool) { useADX = old }(useADX)
	for _, asm := range []bool{true, false} {
		if asm && !haveADX {
			continue
		}
		useADX = asm
		name := map[bool]string{true: "adx", false: "generic"}[asm]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				feMul(&x, &x, &y)
			}
		})
	}
}
