package p384

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"math/big"
	"runtime"
	"testing"
)

func newKey(t testing.TB) (*ecdsa.PrivateKey, *PublicKey) {
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func sign(t testing.TB, priv *ecdsa.PrivateKey, msg []byte) ([]byte, *big.Int, *big.Int) {
	h := sha512.Sum384(msg)
	r, s, err := ecdsa.Sign(rand.Reader, priv, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return h[:], r, s
}

// Every verdict must be crypto/ecdsa's: valid signatures, and each kind of
// wrong one.
func TestAgreesWithECDSA(t *testing.T) { forEachImpl(t, testAgreesWithECDSA) }

func testAgreesWithECDSA(t *testing.T) {
	priv, pub := newKey(t)
	other, _ := newKey(t)
	n := order
	for i := 0; i < 50; i++ {
		msg := make([]byte, 1+i*37)
		rand.Read(msg)
		h, r, s := sign(t, priv, msg)
		_, r2, s2 := sign(t, other, msg)
		flip := append([]byte(nil), h...)
		flip[i%len(flip)] ^= 1 << (i % 8)
		cases := []struct {
			name string
			h    []byte
			r, s *big.Int
		}{
			{"valid", h, r, s},
			{"other key", h, r2, s2},
			{"changed hash", flip, r, s},
			{"r+1", h, new(big.Int).Add(r, big.NewInt(1)), s},
			{"s+1", h, r, new(big.Int).Add(s, big.NewInt(1))},
			{"swapped", h, s, r},
			{"r+n", h, new(big.Int).Add(r, n), s},
			{"s+n", h, r, new(big.Int).Add(s, n)},
			{"-s mod n", h, r, new(big.Int).Sub(n, s)}, // valid too: ECDSA is malleable
			{"r=0", h, big.NewInt(0), s},
			{"s=0", h, r, big.NewInt(0)},
			{"r=n", h, new(big.Int).Set(n), s},
			{"negative r", h, new(big.Int).Neg(r), s},
		}
		for _, c := range cases {
			want := ecdsa.Verify(&priv.PublicKey, c.h, c.r, c.s)
			if got := pub.Verify(c.h, c.r, c.s); got != want {
				t.Fatalf("%s (message %d): p384 says %v, crypto/ecdsa %v", c.name, i, got, want)
			}
			if c.name == "valid" && !want {
				t.Fatal("crypto/ecdsa refused a fresh signature")
			}
		}
	}
}

// Scalars with zero windows and extreme values exercise every table row.
func TestExtremeScalars(t *testing.T) { forEachImpl(t, testExtremeScalars) }

func testExtremeScalars(t *testing.T) {
	priv, pub := newKey(t)
	nMinus1 := new(big.Int).Sub(order, big.NewInt(1))
	for _, r := range []*big.Int{big.NewInt(1), big.NewInt(16), nMinus1, new(big.Int).Lsh(big.NewInt(1), 380)} {
		for _, s := range []*big.Int{big.NewInt(1), nMinus1, big.NewInt(0x10000)} {
			h := sha512.Sum384([]byte(r.String() + s.String()))
			if got, want := pub.Verify(h[:], r, s), ecdsa.Verify(&priv.PublicKey, h[:], r, s); got != want {
				t.Fatalf("r=%x s=%x: p384 %v, crypto/ecdsa %v", r, s, got, want)
			}
		}
	}
}

func TestRefusesOtherCurves(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := NewPublicKey(&k.PublicKey); err == nil {
		t.Fatal("a P-256 key was accepted")
	}
	if _, err := NewPublicKey(nil); err == nil {
		t.Fatal("a nil key was accepted")
	}
}

// FuzzVerify: any hash and signature bytes get crypto/ecdsa's verdict,
// with the assembly and the Go arithmetic.
func FuzzVerify(f *testing.F) {
	priv, pub := newKey(f)
	h, r, s := sign(f, priv, []byte("seed"))
	f.Add(h, r.Bytes(), s.Bytes())
	f.Add(h, s.Bytes(), r.Bytes())
	f.Add([]byte{}, []byte{1}, []byte{1})
	f.Add(h[:10], order.Bytes(), []byte{})
	f.Fuzz(func(t *testing.T, h, rb, sb []byte) {
		r, s := new(big.Int).SetBytes(rb), new(big.Int).SetBytes(sb)
		want := ecdsa.Verify(&priv.PublicKey, h, r, s)
		defer func(old bool) { useADX = old }(useADX)
		for _, asm := range []bool{false, haveADX} {
			useADX = asm
			if got := pub.Verify(h, r, s); got != want {
				t.Fatalf("p384 (assembly %v) %v, crypto/ecdsa %v", asm, got, want)
			}
		}
		// A signature the fuzzer finds valid must be one: sign its hash.
		h2, r2, s2 := sign(t, priv, h)
		if !pub.Verify(h2, r2, s2) {
			t.Fatal("a fresh signature was refused")
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	priv, pub := newKey(b)
	h, r, s := sign(b, priv, []byte("bench"))
	b.Run("p384-table", func(b *testing.B) {
		for b.Loop() {
			if !pub.Verify(h, r, s) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("crypto-ecdsa", func(b *testing.B) {
		for b.Loop() {
			if !ecdsa.Verify(&priv.PublicKey, h, r, s) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("table-build", func(b *testing.B) {
		for b.Loop() {
			NewPublicKey(&priv.PublicKey)
		}
	})
}

// TestTableBytes keeps TableBytes honest: the heap a table really takes.
func TestTableBytes(t *testing.T) {
	priv, _ := newKey(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keys := make([]*PublicKey, 8)
	for i := range keys {
		keys[i], _ = NewPublicKey(&priv.PublicKey)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := int(after.HeapAlloc-before.HeapAlloc) / len(keys)
	runtime.KeepAlive(keys)
	if per > TableBytes*5/4 || per < TableBytes/2 {
		t.Fatalf("a table takes %d bytes, TableBytes says %d", per, TableBytes)
	}
	t.Logf("%d bytes per table", per)
}

// The windows of a scalar, weighted by their position, add up to it.
func TestDigits(t *testing.T) {
	for _, w := range []int{keyWindow, genWindow, 1, 3, 7} {
		for i := 0; i < 20; i++ {
			var s [scalarLen]byte
			rand.Read(s[:])
			if i == 0 {
				for j := range s {
					s[j] = 0xff
				}
			}
			sum := new(big.Int)
			for bit := 0; bit < 8*scalarLen; bit += w {
				d := big.NewInt(int64(digit(&s, bit, w)))
				sum.Add(sum, d.Lsh(d, uint(bit)))
			}
			if want := new(big.Int).SetBytes(s[:]); sum.Cmp(want) != 0 {
				t.Fatalf("w=%d: windows add up to %x, scalar %x", w, sum, want)
			}
		}
	}
}

// BenchmarkVerify64Keys verifies with 64 keys round-robin, as the release
// engine's boot storm does: their tables compete for the caches.
func BenchmarkVerify64Keys(b *testing.B) {
	type sig struct {
		pub  *PublicKey
		h    []byte
		r, s *big.Int
	}
	sigs := make([]sig, 64)
	for i := range sigs {
		priv, pub := newKey(b)
		h, r, s := sign(b, priv, []byte{byte(i)})
		sigs[i] = sig{pub, h, r, s}
	}
	i := 0
	for b.Loop() {
		c := &sigs[i%len(sigs)]
		if !c.pub.Verify(c.h, c.r, c.s) {
			b.Fatal("refused")
		}
		i++
	}
}
