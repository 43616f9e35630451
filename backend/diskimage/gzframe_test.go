package diskimage

import (
	"crypto/rand"
	"hash/crc32"
	"testing"
)

func TestCRC32Combine(t *testing.T) {
	b := make([]byte, 1<<20+77)
	rand.Read(b)
	for _, cut := range []int{0, 1, 63, 4096, 1 << 19, len(b) - 1, len(b)} {
		a, c := crc32.ChecksumIEEE(b[:cut]), crc32.ChecksumIEEE(b[cut:])
		if got, want := crc32Combine(a, c, int64(len(b)-cut)), crc32.ChecksumIEEE(b); got != want {
			t.Fatalf("cut %d: %08x, want %08x", cut, got, want)
		}
	}
}
