package diskimage

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapChunk maps a chunk of a raw image with its pages populated from the
// page cache (read from disk now if they are not there yet).
func (f *File) mapChunk(off int64, n int) ([]byte, func(), bool) {
	raw, ok := f.Image.(*rawImage)
	if !ok || raw.r != f.f || off < 0 || n <= 0 || off+int64(n) > raw.size {
		return nil, nil, false
	}
	pg := int64(os.Getpagesize())
	base := off &^ (pg - 1)
	m, err := unix.Mmap(int(f.f.Fd()), base, int(off-base)+n, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, false
	}
	return m[off-base:], func() { _ = unix.Munmap(m) }, true
}
