// Package argon runs golang.org/x/crypto/argon2 on memory that is already
// mapped and written.
//
// argon2 allocates its blocks fresh (256 MiB for custody's default). On
// Linux the first touch of each fresh page that is read before it is
// written maps the shared zero page and then copies it on the first write,
// and every such copy flushes the TLB of every CPU the process has run on:
// an inter-processor interrupt each time, which in a virtual machine is a
// trap to the hypervisor. Measured here (2 vCPUs, t=2, 256 MiB, 4 lanes),
// that kernel work was two thirds of an unlock: 0.61-0.77 s before, 0.18-0.22 s
// of Argon2 plus about 0.05 s to write the pages first. An attacker guessing
// passphrases never paid it, so removing it costs no security.
//
// Before deriving, prefault allocates the same amount, writes one byte per
// page, and lets the garbage collector free it; argon2's allocation then
// reuses those pages (the runtime zeroes them with writes). Peak memory is
// unchanged: the two allocations never live at once, and neither lives
// beside the garbage of a derivation just before (collected first).
package argon

import (
	"runtime"
	"sync"

	"golang.org/x/crypto/argon2"
)

// IDKey is argon2.IDKey on prefaulted memory.
func IDKey(password, salt []byte, time, memoryKiB uint32, threads uint8, keyLen uint32) []byte {
	prefault(memoryKiB)
	return argon2.IDKey(password, salt, time, memoryKiB, threads, keyLen)
}

// Key is argon2.Key (Argon2i) on prefaulted memory.
func Key(password, salt []byte, time, memoryKiB uint32, threads uint8, keyLen uint32) []byte {
	prefault(memoryKiB)
	return argon2.Key(password, salt, time, memoryKiB, threads, keyLen)
}

// minPrefaultKiB: below this the faults cost less than a collection.
const minPrefaultKiB = 8 << 10

// page is the smallest page size of the platforms Keyholder runs on.
const page = 4096

func prefault(memoryKiB uint32) {
	if memoryKiB < minPrefaultKiB {
		return
	}
	// A derivation just before this one (an unlock that derives twice)
	// left its blocks as garbage that the pacer may not have collected
	// yet; collect it first, or this allocation adds to it (a 532 MiB
	// peak for two 256 MiB derivations was seen under load).
	runtime.GC()
	b := make([]byte, int(memoryKiB)<<10)
	// One writer per CPU: the faults of different pages run in parallel
	// (here 52 ms instead of 104 ms for 256 MiB on 2 CPUs).
	n := min(runtime.NumCPU(), 8)
	part := (len(b)/n + page - 1) &^ (page - 1)
	var wg sync.WaitGroup
	for lo := 0; lo < len(b); lo += part {
		wg.Add(1)
		go func(p []byte) {
			defer wg.Done()
			for i := 0; i < len(p); i += page {
				p[i] = 1
			}
		}(b[lo:min(lo+part, len(b))])
	}
	wg.Wait()
	runtime.KeepAlive(b)
	b = nil
	runtime.GC()
}
