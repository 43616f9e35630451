package diskimage

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"keyholder/backend/internal/sha256x2"
	"keyholder/backend/luks2"
)

// memDisk is an io.WriterAt over a buffer.
type memDisk struct{ b []byte }

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }

// runPlan runs a data plan of src into memory with w workers and returns
// the output's payload, decrypted, and the source's and payload's hashes
// as run computed them, and the payload's hash computed here.
func runPlan(t *testing.T, src *File, workers int) (plain, srcSum, outSum, payloadSum []byte, err error) {
	t.Helper()
	key := make([]byte, luks2.KeySize)
	rand.Read(key)
	c, err := luks2.NewCipher(key, 4096)
	if err != nil {
		t.Fatal(err)
	}
	p := dataPlan(src.Size(), 4096)
	out := &memDisk{b: make([]byte, p.size)}
	sh, oh := sha256x2.New(), sha256x2.New()
	err = run(context.Background(), workers, src, out, p, c, sh, oh, &progress{})
	payload := out.b[luksHeaderSize:]
	ps := sha256.Sum256(payload)
	plain = make([]byte, len(payload))
	c.Decrypt(plain, payload, 0)
	return plain, sh.Sum(nil), oh.Sum(nil), ps[:], err
}

// Workers take chunks in any order but hash them in source order: the
// output decrypts to the source and both hashes are the streams' SHA-256,
// for any number of workers and a last chunk that is short.
func TestRunOrderedHashes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "src.raw")
	data := make([]byte, 3*chunk+5*4096+512)
	rand.Read(data)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []int{1, 2, 5} {
		plain, sh, oh, ps, err := runPlan(t, f, w)
		if err != nil {
			t.Fatalf("%d workers: %v", w, err)
		}
		padded := append(bytes.Clone(data), make([]byte, len(plain)-len(data))...)
		if !bytes.Equal(plain, padded) {
			t.Fatalf("%d workers: the output does not decrypt to the source", w)
		}
		if want := sha256.Sum256(data); !bytes.Equal(sh, want[:]) {
			t.Fatalf("%d workers: source hash differs", w)
		}
		if !bytes.Equal(oh, ps) {
			t.Fatalf("%d workers: output hash differs from the payload's", w)
		}
	}
}

// A source that shrinks while it is read makes the run fail with a clear
// error instead of encrypting zeros or crashing.
func TestRunSourceShrank(t *testing.T) {
	path := filepath.Join(t.TempDir(), "src.raw")
	data := make([]byte, 4*chunk)
	rand.Read(data)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Truncate(path, chunk+4096); err != nil {
		t.Fatal(err)
	}
	_, _, _, _, err = runPlan(t, f, 2)
	if !errors.Is(err, errSourceChanged) {
		t.Fatalf("run over a shrunk source: %v, want errSourceChanged", err)
	}
}
