package diskimage

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// memRegistrar issues a random secret without a store (benchmarks only).
type memRegistrar struct{}

func (memRegistrar) Register(ctx context.Context, r Registration, finish func(Issued) error) error {
	s := make([]byte, 32)
	rand.Read(s)
	return finish(Issued{ImageID: "img_bench", VolumeID: "vol_bench", Generation: 1, Secret: s})
}

// BenchmarkPrepare measures the data-mode pipeline (read, hash, encrypt,
// write, header, output hash, sync) on a 512 MiB raw image.
func BenchmarkPrepare(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src.raw")
	data := make([]byte, 512<<20)
	for i := 0; i < len(data); i += 1 << 20 {
		rand.Read(data[i : i+1<<20]) // in pieces: one long getrandom call blocks the GC
	}
	os.WriteFile(src, data, 0o644)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(dir, "out.img")
		if _, err := Prepare(context.Background(), Options{Source: src, Dest: dst}, memRegistrar{}); err != nil {
			b.Fatal(err)
		}
		os.Remove(dst)
		os.Remove(dst + ".manifest.json")
	}
}
