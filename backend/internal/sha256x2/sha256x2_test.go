package sha256x2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"strings"
	"testing"
)

// modes runs f with the kernels (where the CPU has them) and with the
// crypto/sha256 fallback forced.
func modes(t *testing.T, f func(t *testing.T)) {
	for _, kernel := range []bool{true, false} {
		name := "fallback"
		if kernel {
			name = "kernel"
			if !hasKernel {
				t.Logf("no SHA-NI kernel on this build or CPU: only the fallback runs")
				continue
			}
		}
		t.Run(name, func(t *testing.T) {
			defer func(old bool) { useKernel = old }(useKernel)
			useKernel = kernel
			if got := New().fb == nil; got != kernel {
				t.Fatalf("New uses the kernel: %v, want %v", got, kernel)
			}
			f(t)
		})
	}
}

func sum(d *Digest) string { return hex.EncodeToString(d.Sum(nil)) }

func want(p ...[]byte) string {
	s := sha256.Sum256(bytes.Join(p, nil))
	return hex.EncodeToString(s[:])
}

func random(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

func TestKnownAnswers(t *testing.T) {
	vectors := []struct{ in, out string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{strings.Repeat("a", 1000000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
	}
	modes(t, func(t *testing.T) {
		for _, v := range vectors {
			d := New()
			d.Write([]byte(v.in))
			if got := sum(d); got != v.out {
				t.Errorf("Write(%.10q): %s, want %s", v.in, got, v.out)
			}
			// Both lanes of the kernel, against each other's vector.
			other := vectors[1].in
			if len(v.in) == len(other) {
				other = vectors[2].in
			}
			other = strings.Repeat(other, len(v.in)/len(other)+1)[:len(v.in)]
			a, b := New(), New()
			WriteBoth(a, b, []byte(v.in), []byte(other))
			WriteBoth(b, a, nil, nil)
			if got := sum(a); got != v.out {
				t.Errorf("WriteBoth(%.10q, ...) lane a: %s, want %s", v.in, got, v.out)
			}
			if got, w := sum(b), want([]byte(other)); got != w {
				t.Errorf("WriteBoth lane b: %s, want %s", got, w)
			}
			a, b = New(), New()
			WriteBoth(b, a, []byte(other), []byte(v.in))
			if got := sum(a); got != v.out {
				t.Errorf("WriteBoth(..., %.10q) lane b: %s, want %s", v.in, got, v.out)
			}
		}
	})
}

// Single-stream writes split at random points.
func TestWriteSplits(t *testing.T) {
	modes(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(1))
		for i := 0; i < 2000; i++ {
			n := r.Intn(5000)
			if i%100 == 0 {
				n = r.Intn(3<<20) + 1<<20
			}
			p := random(r, n)
			d := New()
			for q := p; len(q) > 0; {
				k := r.Intn(len(q) + 1)
				if r.Intn(4) == 0 {
					k = min(len(q), 64*r.Intn(4))
				}
				d.Write(q[:k])
				q = q[k:]
			}
			if got, w := sum(d), want(p); got != w {
				t.Fatalf("len %d: %s, want %s", n, got, w)
			}
		}
	})
}

// Sequences of WriteBoth calls of equal and unequal lengths, mixed with
// single writes that leave partial blocks (equal and unequal) buffered,
// with intermediate sums.
func TestWriteBothSequences(t *testing.T) {
	modes(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(2))
		for i := 0; i < 1000; i++ {
			a, b := New(), New()
			var sa, sb [][]byte
			for step := r.Intn(12); step >= 0; step-- {
				n := r.Intn(3000)
				if r.Intn(3) == 0 {
					n = 64 * r.Intn(40)
				}
				if i%50 == 0 && step == 0 {
					n = 4<<20 + r.Intn(3)*64 + r.Intn(2)*7
				}
				switch r.Intn(6) {
				case 0: // unequal lengths
					pa, pb := random(r, n), random(r, r.Intn(3000))
					WriteBoth(a, b, pa, pb)
					sa, sb = append(sa, pa), append(sb, pb)
				case 1: // the same partial block on both
					k := r.Intn(64)
					pa, pb := random(r, k), random(r, k)
					a.Write(pa)
					b.Write(pb)
					sa, sb = append(sa, pa), append(sb, pb)
				case 2: // a partial block on one only
					pa := random(r, r.Intn(64))
					a.Write(pa)
					sa = append(sa, pa)
				case 3: // an intermediate sum
					if got, w := sum(a), want(sa...); got != w {
						t.Fatalf("case %d: intermediate a: %s, want %s", i, got, w)
					}
					if got, w := sum(b), want(sb...); got != w {
						t.Fatalf("case %d: intermediate b: %s, want %s", i, got, w)
					}
				default: // equal lengths
					pa, pb := random(r, n), random(r, n)
					WriteBoth(a, b, pa, pb)
					sa, sb = append(sa, pa), append(sb, pb)
				}
			}
			if got, w := sum(a), want(sa...); got != w {
				t.Fatalf("case %d: a %s, want %s", i, got, w)
			}
			if got, w := sum(b), want(sb...); got != w {
				t.Fatalf("case %d: b %s, want %s", i, got, w)
			}
		}
	})
}

// The image preparation pattern: 4 MiB chunks, the last one shorter.
func TestWriteBothChunks(t *testing.T) {
	modes(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(3))
		src, dst := random(r, 9<<20+4096+100), random(r, 9<<20+4096+100)
		a, b := New(), New()
		for off := 0; off < len(src); off += 4 << 20 {
			end := min(off+4<<20, len(src))
			WriteBoth(a, b, src[off:end], dst[off:end])
		}
		if got, w := sum(a), want(src); got != w {
			t.Errorf("source: %s, want %s", got, w)
		}
		if got, w := sum(b), want(dst); got != w {
			t.Errorf("output: %s, want %s", got, w)
		}
	})
}

// WriteBoth with one digest twice means both writes go to it in order;
// the same slice for both lanes is fine.
func TestWriteBothAliasing(t *testing.T) {
	modes(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(4))
		pa, pb := random(r, 1000), random(r, 1000)
		d := New()
		WriteBoth(d, d, pa, pb)
		if got, w := sum(d), want(pa, pb); got != w {
			t.Errorf("same digest: %s, want %s", got, w)
		}
		a, b := New(), New()
		WriteBoth(a, b, pa, pa)
		if got, w := sum(a), want(pa); got != w || sum(b) != w {
			t.Errorf("same slice: %s and %s, want %s", got, sum(b), w)
		}
	})
}

func TestSumAndReset(t *testing.T) {
	modes(t, func(t *testing.T) {
		r := rand.New(rand.NewSource(5))
		p, q := random(r, 200), random(r, 77)
		d := New()
		d.Write(p)
		first := d.Sum(nil)
		if again := d.Sum(nil); !bytes.Equal(first, again) {
			t.Errorf("second Sum %x, first %x", again, first)
		}
		d.Write(q) // Sum must not have changed the state
		if got, w := sum(d), want(p, q); got != w {
			t.Errorf("after Sum and Write: %s, want %s", got, w)
		}
		prefix := []byte("prefix")
		out := d.Sum(prefix)
		if !bytes.Equal(out[:len(prefix)], []byte("prefix")) || hex.EncodeToString(out[len(prefix):]) != want(p, q) || len(out) != len(prefix)+Size {
			t.Errorf("Sum(prefix) = %x", out)
		}
		d.Reset()
		if got, w := sum(d), want(); got != w {
			t.Errorf("after Reset: %s, want %s", got, w)
		}
		d.Write(q)
		if got, w := sum(d), want(q); got != w {
			t.Errorf("Reset then Write: %s, want %s", got, w)
		}
		var z Digest // the zero value works like New()
		z.Write(p)
		if got, w := sum(&z), want(p); got != w {
			t.Errorf("zero Digest: %s, want %s", got, w)
		}
		var za, zb Digest
		WriteBoth(&za, &zb, p, p)
		if got, w := sum(&za), want(p); got != w || sum(&zb) != w {
			t.Errorf("zero Digests in WriteBoth: %s, %s, want %s", got, sum(&zb), w)
		}
		if d.Size() != 32 || d.BlockSize() != 64 {
			t.Errorf("Size %d, BlockSize %d", d.Size(), d.BlockSize())
		}
		if n, err := d.Write(p); n != len(p) || err != nil {
			t.Errorf("Write: %d, %v", n, err)
		}
	})
}

// A digest made with the fallback and one with the kernel still combine.
func TestWriteBothMixed(t *testing.T) {
	if !hasKernel {
		t.Skip("no kernel")
	}
	r := rand.New(rand.NewSource(6))
	pa, pb := random(r, 4096), random(r, 4096)
	a := New()
	defer func(old bool) { useKernel = old }(useKernel)
	useKernel = false
	b := New()
	if a.fb != nil || b.fb == nil {
		t.Fatal("want a on the kernel, b on the fallback")
	}
	WriteBoth(a, b, pa, pb)
	if sum(a) != want(pa) || sum(b) != want(pb) {
		t.Errorf("mixed digests: wrong sums")
	}
}

func FuzzWriteBoth(f *testing.F) {
	f.Add([]byte("abc"), []byte("def"), uint8(0), uint8(0), uint16(0), true)
	f.Add(bytes.Repeat([]byte{1}, 300), bytes.Repeat([]byte{2}, 300), uint8(5), uint8(5), uint16(70), true)
	f.Add(bytes.Repeat([]byte{1}, 200), bytes.Repeat([]byte{2}, 190), uint8(64), uint8(3), uint16(128), false)
	f.Fuzz(func(t *testing.T, pa, pb []byte, preA, preB uint8, cut uint16, equal bool) {
		if equal {
			n := min(len(pa), len(pb))
			pa, pb = pa[:n], pb[:n]
		}
		// Prefixes written alone leave partial blocks buffered.
		ka, kb := min(int(preA), len(pa)), min(int(preB), len(pb))
		a, b := New(), New()
		a.Write(pa[:ka])
		b.Write(pb[:kb])
		ra, rb := pa[ka:], pb[kb:]
		// Two WriteBoth calls, split at the same offset in both.
		c := min(int(cut), len(ra), len(rb))
		WriteBoth(a, b, ra[:c], rb[:c])
		WriteBoth(a, b, ra[c:], rb[c:])
		if got, w := sum(a), want(pa); got != w {
			t.Errorf("a: %s, want %s", got, w)
		}
		if got, w := sum(b), want(pb); got != w {
			t.Errorf("b: %s, want %s", got, w)
		}
	})
}
