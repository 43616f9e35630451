package xts

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"testing"

	refxts "golang.org/x/crypto/xts"
)

// refCrypt is Encrypt or Decrypt done sector by sector with x/crypto/xts.
func refCrypt(t testing.TB, key, dst, src []byte, sector int, iv, ivStep uint64, enc bool) {
	ref, err := refxts.NewCipher(aesNew, key)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(src); off += sector {
		if enc {
			ref.Encrypt(dst[off:off+sector], src[off:off+sector], iv)
		} else {
			ref.Decrypt(dst[off:off+sector], src[off:off+sector], iv)
		}
		iv += ivStep
	}
}

// ivsNear returns sector numbers around the places where a 64-bit IV
// counter carries or wraps, plus random ones.
func ivsNear(r *mrand.Rand) []uint64 {
	return []uint64{
		0,
		1<<32 - 1 - uint64(r.IntN(16)),
		1<<32 - 2,
		1 << 32,
		1<<63 - 1,
		^uint64(0) - uint64(r.IntN(16)),
		^uint64(0),
		r.Uint64(),
		r.Uint64() >> 24,
	}
}

// TestDifferential checks every path against golang.org/x/crypto/xts for
// random AES-256 keys, IVs near the 2^32 and 2^64 boundaries, 512- and
// 4096-byte sectors (and sizes that leave an eight-block remainder after
// the sixteen-block kernel), one to 40 sectors (the VAES path makes sector
// tweaks 32 at a time), in place and out of place, in both directions.
// Bytes of dst past the data must stay put.
func TestDifferential(t *testing.T) {
	r := mrand.New(mrand.NewPCG(uint64(os.Getpid()), 1))
	trials := 6
	if testing.Short() {
		trials = 2
	}
	for trial := 0; trial < trials; trial++ {
		key := make([]byte, 64)
		rand.Read(key)
		for _, sector := range []int{512, 4096, 384, 2176} {
			ivStep := uint64(max(1, sector/512))
			for _, iv := range ivsNear(r) {
				nsec := 1 + r.IntN(40)
				switch trial {
				case 0:
					nsec = 17 // two batches of eight sector tweaks and one more
				case 1:
					nsec = 33 + r.IntN(8) // past a batch of 32 sector tweaks
				}
				src := make([]byte, nsec*sector)
				rand.Read(src)
				wantCT := make([]byte, len(src))
				refCrypt(t, key, wantCT, src, sector, iv, ivStep, true)
				for _, path := range paths() {
					c, err := New(key)
					if err != nil {
						t.Fatal(err)
					}
					setPath(t, c, path)
					for _, inPlace := range []bool{false, true} {
						what := func(op string) string {
							return fmt.Sprintf("%s path %s sector %d sectors %d iv %#x in place %v", op, path, sector, nsec, iv, inPlace)
						}
						// Encrypt.
						var got []byte
						if inPlace {
							got = append([]byte(nil), src...)
							c.Encrypt(got, got, sector, iv, ivStep)
						} else {
							in := append([]byte(nil), src...)
							got = make([]byte, len(src)+64)
							rand.Read(got)
							tail := append([]byte(nil), got[len(src):]...)
							c.Encrypt(got, in, sector, iv, ivStep)
							if !bytes.Equal(in, src) {
								t.Fatalf("%s: source modified", what("encrypt"))
							}
							if !bytes.Equal(got[len(src):], tail) {
								t.Fatalf("%s: wrote past the data", what("encrypt"))
							}
							got = got[:len(src)]
						}
						if i := firstDiff(got, wantCT); i >= 0 {
							t.Fatalf("%s: differs from x/crypto/xts at byte %d (sector %d, block %d)", what("encrypt"), i, i/sector, i%sector/16)
						}
						// Decrypt.
						if inPlace {
							got = append([]byte(nil), wantCT...)
							c.Decrypt(got, got, sector, iv, ivStep)
						} else {
							got = make([]byte, len(src)+64)
							rand.Read(got)
							tail := append([]byte(nil), got[len(src):]...)
							c.Decrypt(got, wantCT, sector, iv, ivStep)
							if !bytes.Equal(got[len(src):], tail) {
								t.Fatalf("%s: wrote past the data", what("decrypt"))
							}
							got = got[:len(src)]
						}
						if i := firstDiff(got, src); i >= 0 {
							t.Fatalf("%s: differs from x/crypto/xts at byte %d (sector %d, block %d)", what("decrypt"), i, i/sector, i%sector/16)
						}
					}
				}
			}
		}
	}
}

// FuzzAgainstReference compares every path with x/crypto/xts for arbitrary
// keys, IVs, sector sizes (any whole number of blocks up to 8 KiB) and
// sector counts, in both directions.
func FuzzAgainstReference(f *testing.F) {
	f.Add(make([]byte, 64), uint64(0), uint16(31), uint8(0), []byte("x"))
	f.Add(make([]byte, 32), ^uint64(0), uint16(255), uint8(3), []byte("y"))
	f.Add(bytes.Repeat([]byte{0xa5}, 64), uint64(1<<32-1), uint16(23), uint8(18), []byte("z"))
	f.Add(bytes.Repeat([]byte{0x5a}, 64), uint64(1<<63), uint16(135), uint8(9), []byte{})
	f.Add(bytes.Repeat([]byte{0x3c}, 64), ^uint64(0)-40, uint16(31), uint8(33), []byte("past 32 sectors"))
	f.Add(bytes.Repeat([]byte{0xc3}, 32), uint64(1<<32-5), uint16(255), uint8(32), []byte("4096, AES-128"))
	f.Fuzz(func(t *testing.T, key []byte, iv uint64, blocks uint16, sectors uint8, seed []byte) {
		// Zero-pad or cut the key to 32 or 64 bytes.
		n := 64
		if len(key) <= 32 {
			n = 32
		}
		key = append(key[:min(len(key), n):min(len(key), n)], make([]byte, max(0, n-len(key)))...)
		sector := 16 * (1 + int(blocks)%512)
		nsec := 1 + int(sectors)%40
		h := sha256.Sum256(seed)
		r := mrand.NewChaCha8(h)
		src := make([]byte, nsec*sector)
		r.Read(src)
		ivStep := uint64(1 + len(seed)%8)
		want := make([]byte, len(src))
		refCrypt(t, key, want, src, sector, iv, ivStep, true)
		for _, path := range paths() {
			c, err := New(key)
			if err != nil {
				t.Fatal(err)
			}
			setPath(t, c, path)
			got := make([]byte, len(src))
			c.Encrypt(got, src, sector, iv, ivStep)
			if i := firstDiff(got, want); i >= 0 {
				t.Fatalf("path %s key %d sector %d: encrypt differs at byte %d", path, len(key), sector, i)
			}
			c.Decrypt(got, got, sector, iv, ivStep)
			if i := firstDiff(got, src); i >= 0 {
				t.Fatalf("path %s key %d sector %d: decrypt differs at byte %d", path, len(key), sector, i)
			}
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
