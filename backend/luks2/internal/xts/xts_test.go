package xts

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"testing"

	refxts "golang.org/x/crypto/xts"
)

// TestAgainstReference compares every path (VAES, AES-NI and generic, both
// key sizes, sector sizes that end on a partial batch of eight or sixteen
// blocks, or mix all three kernels in one sector) with
// golang.org/x/crypto/xts, which dm-crypt's aes-xts-plain64 matches.
func TestAgainstReference(t *testing.T) {
	for _, keyLen := range []int{32, 64} {
		for _, sector := range []int{16, 48, 128, 144, 256, 272, 384, 400, 512, 4096, 4112} {
			for _, path := range paths() {
				key := make([]byte, keyLen)
				rand.Read(key)
				c, err := New(key)
				if err != nil {
					t.Fatal(err)
				}
				if c.fast == nil && haveFast() {
					t.Fatal("fast path missing")
				}
				setPath(t, c, path)
				ref, err := refxts.NewCipher(aesNew, key)
				if err != nil {
					t.Fatal(err)
				}
				const sectors = 19 // two batches of eight tweaks and a partial one
				src := make([]byte, sector*sectors)
				rand.Read(src)
				got := make([]byte, len(src))
				iv := uint64(0xfffffffffffffffe) // exercises the 64-bit wrap
				c.Encrypt(got, src, sector, iv, 8)
				want := make([]byte, len(src))
				for i := 0; i < sectors; i++ {
					ref.Encrypt(want[i*sector:(i+1)*sector], src[i*sector:(i+1)*sector], iv+uint64(i)*8)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("key %d sector %d path %s: ciphertext differs from reference", keyLen, sector, path)
				}
				c.Decrypt(got, got, sector, iv, 8)
				if !bytes.Equal(got, src) {
					t.Fatalf("key %d sector %d path %s: decrypt does not invert encrypt", keyLen, sector, path)
				}
			}
		}
	}
}

// TestIEEEVector is vector 10 of IEEE P1619 (AES-256, data unit 0xff).
func TestIEEEVector(t *testing.T) {
	key := append(seq(0x27, 0x18, 0x28, 0x18, 0x28, 0x45, 0x90, 0x45, 0x23, 0x53, 0x60, 0x28, 0x74, 0x71, 0x35, 0x26, 0x62, 0x49, 0x77, 0x57, 0x24, 0x70, 0x93, 0x69, 0x99, 0x59, 0x57, 0x49, 0x66, 0x96, 0x76, 0x27),
		seq(0x31, 0x41, 0x59, 0x26, 0x53, 0x58, 0x97, 0x93, 0x23, 0x84, 0x62, 0x64, 0x33, 0x83, 0x27, 0x95, 0x02, 0x88, 0x41, 0x97, 0x16, 0x93, 0x99, 0x37, 0x51, 0x05, 0x82, 0x09, 0x74, 0x94, 0x45, 0x92)...)
	src := make([]byte, 512)
	for i := range src {
		src[i] = byte(i)
	}
	c, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 512)
	c.Encrypt(got, src, 512, 0xff, 1)
	want := seq(0x1c, 0x3b, 0x3a, 0x10, 0x2f, 0x77, 0x03, 0x86, 0xe4, 0x83, 0x6c, 0x99, 0xe3, 0x70, 0xcf, 0x9b)
	if !bytes.Equal(got[:16], want) {
		t.Fatalf("first block %x, want %x", got[:16], want)
	}
}

func TestKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 48, 65} {
		if _, err := New(make([]byte, n)); err != ErrKeySize {
			t.Errorf("key of %d bytes: err %v, want ErrKeySize", n, err)
		}
	}
}

func seq(b ...byte) []byte { return b }

var _ = binary.LittleEndian

// BenchmarkEncrypt4096 and BenchmarkEncrypt512 measure the default (fastest)
// path; the bench script greps for these names. The others pin one kernel
// so the difference shows: YMM* the AVX2 VAES kernel (the default on VAES
// CPUs without AVX-512, or not AMD), AESNI* the eight-block AES-NI kernel.
func BenchmarkEncrypt4096(b *testing.B) { bench(b, 4096, "", true) }
func BenchmarkEncrypt512(b *testing.B)  { bench(b, 512, "", true) }
func BenchmarkDecrypt4096(b *testing.B) { bench(b, 4096, "", false) }
func BenchmarkDecrypt512(b *testing.B)  { bench(b, 512, "", false) }
func BenchmarkYMM4096(b *testing.B)     { bench(b, 4096, "vaes256", true) }
func BenchmarkYMM512(b *testing.B)      { bench(b, 512, "vaes256", true) }
func BenchmarkAESNI4096(b *testing.B)   { bench(b, 4096, "aesni", true) }
func BenchmarkAESNI512(b *testing.B)    { bench(b, 512, "aesni", true) }
func BenchmarkGeneric4096(b *testing.B) { bench(b, 4096, "generic", true) }

func bench(b *testing.B, sector int, path string, enc bool) {
	key := make([]byte, 64)
	c, _ := New(key)
	if path != "" {
		if !slices.Contains(paths(), path) {
			b.Skipf("no %s path on this machine", path)
		}
		setPath(b, c, path)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if enc {
			c.Encrypt(buf, buf, sector, 0, uint64(sector/512))
		} else {
			c.Decrypt(buf, buf, sector, 0, uint64(sector/512))
		}
	}
}
