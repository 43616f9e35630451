package custody

import (
	"fmt"
	"testing"
)

// BenchmarkKDF measures Argon2id at 256 MiB for the tuning of DefaultKDF:
// go test -run '^$' -bench KDF ./backend/custody
func BenchmarkKDF(b *testing.B) {
	salt := make([]byte, saltSize)
	for _, p := range []KDFParams{DefaultKDF, {Time: 2, MemoryKiB: 256 * 1024, Threads: 4}, {Time: 6, MemoryKiB: 256 * 1024, Threads: 4}, {Time: 8, MemoryKiB: 256 * 1024, Threads: 2}} {
		b.Run(fmt.Sprintf("t=%d,m=%dMiB,p=%d", p.Time, p.MemoryKiB/1024, p.Threads), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				clear(passphraseKey([]byte("benchmark passphrase"), salt, p))
			}
		})
	}
}
