package argon

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"testing"

	"golang.org/x/crypto/argon2"
)

// The wrappers must derive exactly what argon2 derives, below and above
// the size where they prefault.
func TestSameAsArgon2(t *testing.T) {
	for _, m := range []uint32{64, 16 << 10} {
		pass, salt := []byte("correct horse"), []byte("0123456789abcdef")
		if got, want := IDKey(pass, salt, 1, m, 2, 32), argon2.IDKey(pass, salt, 1, m, 2, 32); !bytes.Equal(got, want) {
			t.Fatalf("IDKey m=%d: %x, argon2 %x", m, got, want)
		}
		if got, want := Key(pass, salt, 1, m, 2, 32), argon2.Key(pass, salt, 1, m, 2, 32); !bytes.Equal(got, want) {
			t.Fatalf("Key m=%d: %x, argon2 %x", m, got, want)
		}
	}
}

// sink keeps a derivation's garbage reachable until the test drops it.
var sink []byte

// TestDerivationsInARowDoNotAddUp: the blocks of the previous derivation
// are garbage but may not have been collected yet (an unlock that derives
// twice, on a loaded machine). A derivation must not add its blocks to
// them: with collection left to the pacer turned off, the heap obtained
// held from the OS may grow by at most a fraction of one derivation's
// memory.
func TestDerivationsInARowDoNotAddUp(t *testing.T) {
	const m = 64 << 10 // KiB
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	pass, salt := []byte("correct horse"), []byte("0123456789abcdef")
	debug.FreeOSMemory()       // what earlier tests left idle goes back to the OS
	sink = make([]byte, m<<10) // the previous derivation's blocks, not yet collected
	for i := 0; i < len(sink); i += page {
		sink[i] = 1
	}
	sink = nil
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	IDKey(pass, salt, 1, m, 2, 32)
	runtime.ReadMemStats(&after)
	held := func(s *runtime.MemStats) int64 { return int64(s.HeapSys) - int64(s.HeapReleased) }
	if grew := held(&after) - held(&before); grew > m<<10/4 {
		t.Fatalf("the heap grew by %d MiB for a %d MiB derivation after another's garbage", grew>>20, m>>10)
	}
}
