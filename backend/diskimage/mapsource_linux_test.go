package diskimage

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A mapped chunk holds the source's bytes, and a source that shrinks under
// the mapping is an error for the run, not a crash of the process.
func TestMapChunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "src.raw")
	data := make([]byte, 2<<20)
	rand.Read(data)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, unmap, ok := f.mapChunk(1<<20+4096, 64<<10)
	if !ok {
		t.Fatal("a raw file chunk was not mapped")
	}
	if !bytes.Equal(b, data[1<<20+4096:][:64<<10]) {
		t.Fatal("the mapped chunk differs from the file")
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var sum byte
	err = guardMapped(func() {
		for _, c := range b {
			sum ^= c
		}
	})
	unmap()
	if !errors.Is(err, errSourceChanged) {
		t.Fatalf("reading a mapping past the truncated end: %v, want errSourceChanged", err)
	}
	if _, _, ok := f.mapChunk(0, 4<<20); ok {
		t.Fatal("a chunk past the image's end was mapped")
	}
}
