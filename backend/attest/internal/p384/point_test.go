package p384

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math/big"
	"testing"

	"filippo.io/nistec"
)

// The signed digits of a scalar, weighted by their position, add up to it
// and stay within the table.
func TestRecode(t *testing.T) {
	for _, w := range []int{keyWindow, genWindow, 2, 3, 4, 5, 6, 7, 8} {
		for i := 0; i < 50; i++ {
			var s [scalarLen]byte
			rand.Read(s[:])
			switch i {
			case 0:
				for j := range s {
					s[j] = 0xff
				}
			case 1:
				s = [scalarLen]byte{}
			case 2:
				order.FillBytes(s[:])
			}
			var digits [8*scalarLen + 1]int
			n := recode(&s, w, digits[:])
			sum := new(big.Int)
			for k, d := range digits[:n] {
				if d > 1<<(w-1) || d < -(1<<(w-1)) {
					t.Fatalf("w=%d: digit %d is %d", w, k, d)
				}
				v := big.NewInt(int64(d))
				sum.Add(sum, v.Lsh(v, uint(k*w)))
			}
			if want := new(big.Int).SetBytes(s[:]); sum.Cmp(want) != 0 {
				t.Fatalf("w=%d: digits add up to %x, scalar %x", w, sum, want)
			}
		}
	}
}

// affineBytes returns p's uncompressed encoding (nil for infinity).
func (q *jacobian) bytes() []byte {
	if q.z.isZero() {
		return nil
	}
	var a [1]affine
	normalize(a[:], []jacobian{*q})
	return append(append([]byte{4}, feBytes(ptr(a[0].x.plain()))...), feBytes(ptr(a[0].y.plain()))...)
}

func (x *fe) plain() fe {
	var v fe
	feMul(&v, x, &fe{1})
	return v
}

func ptr[T any](v T) *T { return &v }

// The tables' scalar multiples agree with nistec's, for G and a key, for
// random and edge scalars, and so do sums that meet the exceptional cases
// of the addition (doubling, a point plus its negative).
func TestTablesAgainstNistec(t *testing.T) { forEachImpl(t, testTablesAgainstNistec) }

func testTablesAgainstNistec(t *testing.T) {
	priv, pub := newKey(t)
	q, err := nistec.NewP384Point().SetBytes(must(priv.PublicKey.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	nm1 := new(big.Int).Sub(order, big.NewInt(1))
	scalars := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(2), big.NewInt(64), nm1,
		new(big.Int).Sub(order, big.NewInt(64)), new(big.Int).Lsh(big.NewInt(1), 383)}
	for i := 0; i < 20; i++ {
		k, _ := rand.Int(rand.Reader, order)
		scalars = append(scalars, k)
	}
	for _, k := range scalars {
		var b [scalarLen]byte
		k.FillBytes(b[:])
		var got jacobian
		generator().add(&got, &b)
		want, _ := nistec.NewP384Point().ScalarBaseMult(b[:])
		if g, w := got.bytes(), want.Bytes(); !bytes.Equal(g, w) && !(g == nil && len(w) == 1) {
			t.Fatalf("[%x]G: %x, nistec %x", k, g, w)
		}
		got = jacobian{}
		pub.table.add(&got, &b)
		want, _ = nistec.NewP384Point().ScalarMult(q, b[:])
		if g, w := got.bytes(), want.Bytes(); !bytes.Equal(g, w) && !(g == nil && len(w) == 1) {
			t.Fatalf("[%x]Q: %x, nistec %x", k, g, w)
		}
		// [k]Q + [k]Q and [k]Q + [n−k]Q, each table's sum added to the
		// other's.
		var mk [scalarLen]byte
		new(big.Int).Mod(new(big.Int).Sub(order, k), order).FillBytes(mk[:])
		for _, second := range [][scalarLen]byte{b, mk} {
			sum := jacobian{}
			pub.table.add(&sum, &b)
			pub.table.add(&sum, &second)
			want, _ = nistec.NewP384Point().ScalarMult(q, b[:])
			w2, _ := nistec.NewP384Point().ScalarMult(q, second[:])
			want.Add(want, w2)
			if g, w := sum.bytes(), want.Bytes(); !bytes.Equal(g, w) && !(g == nil && len(w) == 1) {
				t.Fatalf("[%x]Q + [%x]Q: %x, nistec %x", k, second, g, w)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Signatures built so that u1·G + u2·Q meets the addition's exceptional
// cases: the sum is the point at infinity (the last addition adds a
// point's negative), the last addition is a doubling (u1·G = Q), u1 = 0
// (the key's part starts from infinity), and x(R) ≥ n (r = x − n).
func TestExceptionalSignatures(t *testing.T) { forEachImpl(t, testExceptionalSignatures) }

func testExceptionalSignatures(t *testing.T) {
	type sig struct {
		name string
		pub  *ecdsa.PublicKey
		h    []byte
		r, s *big.Int
		want bool
	}
	var sigs []sig
	hashOf := func(e *big.Int) []byte { return new(big.Int).Mod(e, order).FillBytes(make([]byte, scalarLen)) }
	keyOf := func(k *big.Int) *ecdsa.PublicKey {
		x, y := elliptic.P384().ScalarBaseMult(k.FillBytes(make([]byte, scalarLen)))
		return &ecdsa.PublicKey{Curve: elliptic.P384(), X: x, Y: y}
	}
	mul := func(a, b *big.Int) *big.Int { v := new(big.Int).Mul(a, b); return v.Mod(v, order) }
	inv := func(a *big.Int) *big.Int { return new(big.Int).ModInverse(a, order) }
	for i := 0; i < 10; i++ {
		k, _ := rand.Int(rand.Reader, order)
		k.Add(k, big.NewInt(1)) // the private key, so Q = [k]G
		if k.Cmp(order) >= 0 {
			continue
		}
		pub := keyOf(k)
		r, _ := rand.Int(rand.Reader, order)
		r.Add(r, big.NewInt(1))
		s, _ := rand.Int(rand.Reader, order)
		s.Add(s, big.NewInt(1))
		if r.Cmp(order) >= 0 || s.Cmp(order) >= 0 {
			continue
		}
		// e = −r·k: u1 + u2·k = 0, the sum is the point at infinity.
		sigs = append(sigs, sig{"infinity", pub, hashOf(new(big.Int).Neg(mul(r, k))), r, s, false})
		// u2 = 1 (s = r) and u1 = k (e = k·r): Q + Q, with r = x(2Q).
		x2, _ := elliptic.P384().ScalarBaseMult(mul(big.NewInt(2), k).FillBytes(make([]byte, scalarLen)))
		r2 := new(big.Int).Mod(x2, order)
		sigs = append(sigs, sig{"doubling", pub, hashOf(mul(k, r2)), r2, new(big.Int).Set(r2), true})
		// The same with the wrong r.
		sigs = append(sigs, sig{"doubling, wrong r", pub, hashOf(mul(k, r2)), new(big.Int).Add(r2, big.NewInt(1)), new(big.Int).Set(r2), false})
		// u1 = 0 (e = 0 or e = n): R = [u2]Q, r = x(R), s = r/u2.
		u2, _ := rand.Int(rand.Reader, order)
		u2.Add(u2, big.NewInt(1))
		if u2.Cmp(order) < 0 {
			xr, _ := elliptic.P384().ScalarBaseMult(mul(u2, k).FillBytes(make([]byte, scalarLen)))
			rr := new(big.Int).Mod(xr, order)
			ss := mul(rr, inv(u2))
			sigs = append(sigs, sig{"u1 = 0", pub, make([]byte, scalarLen), rr, ss, true})
			sigs = append(sigs, sig{"u1 = 0 (e = n)", pub, order.Bytes(), rr, ss, true})
			sigs = append(sigs, sig{"u1 = 0, short hash", pub, []byte{0}, rr, ss, true})
		}
	}
	// A key R whose x is at least n, signing the zero hash with u1 = 0,
	// u2 = 1: r = x − n = s.
	b := elliptic.P384().Params().B
	pMinus1Over2 := new(big.Int).Rsh(pBig, 1)
	for x, found := new(big.Int).Add(order, big.NewInt(1)), 0; found < 3; x.Add(x, big.NewInt(1)) {
		// y² = x³ − 3x + b
		y2 := new(big.Int).Exp(x, big.NewInt(3), pBig)
		y2.Sub(y2, new(big.Int).Mul(big.NewInt(3), x))
		y2.Add(y2, b)
		y2.Mod(y2, pBig)
		if new(big.Int).Exp(y2, pMinus1Over2, pBig).Cmp(big.NewInt(1)) != 0 {
			continue
		}
		y := new(big.Int).ModSqrt(y2, pBig)
		pub := &ecdsa.PublicKey{Curve: elliptic.P384(), X: new(big.Int).Set(x), Y: y}
		r := new(big.Int).Sub(x, order)
		sigs = append(sigs, sig{"x ≥ n", pub, make([]byte, scalarLen), r, new(big.Int).Set(r), true})
		sigs = append(sigs, sig{"x ≥ n, r = x", pub, make([]byte, scalarLen), new(big.Int).Set(x), new(big.Int).Set(r), false})
		found++
	}
	seen := map[string]bool{}
	for _, c := range sigs {
		want := ecdsa.Verify(c.pub, c.h, c.r, c.s)
		if want != c.want {
			t.Fatalf("%s: crypto/ecdsa says %v; the test is wrong", c.name, want)
		}
		pub, err := NewPublicKey(c.pub)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := pub.Verify(c.h, c.r, c.s); got != want {
			t.Fatalf("%s: p384 %v, crypto/ecdsa %v", c.name, got, want)
		}
		seen[c.name] = true
	}
	if len(seen) != 8 {
		t.Fatalf("only %d kinds of signature were made: %v", len(seen), seen)
	}
}
