package diskimage

import (
	"errors"
	"runtime/debug"
)

// chunkMapper is a source whose chunks can be mapped rather than copied:
// a raw image file, on Linux. Hashing and encryption then read the page
// cache directly, which saves a copy of every byte of the image.
type chunkMapper interface {
	// mapChunk maps n bytes of the virtual disk at off read-only; ok is
	// false where the chunk cannot be mapped (it is read instead).
	mapChunk(off int64, n int) (b []byte, unmap func(), ok bool)
}

// errSourceChanged is what reading a mapped chunk past the source's end
// becomes: another program truncated the source while it was read.
var errSourceChanged = errors.New("read source: the source file changed (shrank) while it was being read")

// guardMapped runs fn, which reads mapped source pages, and turns a fault
// there (SIGBUS once the file shrank under the mapping) into an error.
func guardMapped(fn func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); ok {
				err = errSourceChanged
				return
			}
			panic(r)
		}
	}()
	fn()
	return nil
}
