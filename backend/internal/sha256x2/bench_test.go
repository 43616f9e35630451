package sha256x2

import (
	"crypto/sha256"
	"math/rand"
	"testing"
)

const benchSize = 4 << 20

func benchBuf(seed int64) []byte {
	b := make([]byte, benchSize)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// BenchmarkStdSHA256 is the baseline: crypto/sha256, one stream, 4 MiB
// writes.
func BenchmarkStdSHA256(b *testing.B) {
	buf := benchBuf(1)
	h := sha256.New()
	b.SetBytes(benchSize)
	for b.Loop() {
		h.Write(buf)
	}
}

// BenchmarkWriteBoth writes 4 MiB to each of two streams per op; the
// bytes counted are both streams'.
func BenchmarkWriteBoth(b *testing.B) {
	pa, pb := benchBuf(1), benchBuf(2)
	da, db := New(), New()
	b.SetBytes(2 * benchSize)
	for b.Loop() {
		WriteBoth(da, db, pa, pb)
	}
}

// BenchmarkSingle is Digest.Write, one stream, 4 MiB writes.
func BenchmarkSingle(b *testing.B) {
	buf := benchBuf(1)
	d := New()
	b.SetBytes(benchSize)
	for b.Loop() {
		d.Write(buf)
	}
}
