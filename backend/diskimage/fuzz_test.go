package diskimage

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"keyholder/internal/fuzzseed"
)

// Run the fuzzers with -fuzzminimizetime 1x (e.g. go test -run X -fuzz
// FuzzQCOW2 -fuzztime 30s -fuzzminimizetime 1x): minimising the large image
// inputs otherwise keeps the engine busy for minutes between executions.

// fuzzImage opens data as an image and reads it: never a panic, never a
// read that claims more than it returns.
func fuzzImage(t *testing.T, data []byte) {
	im, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	for _, off := range []int64{0, im.Size() / 2, im.Size() - 1000} {
		if off < 0 {
			continue
		}
		n, _ := im.ReadAt(buf, off)
		if n < 0 || n > len(buf) {
			t.Fatalf("ReadAt returned %d", n)
		}
	}
	ReadGPT(im, im.Size())
	_ = im.Detail()
}

func FuzzQCOW2(f *testing.F) { f.Fuzz(fuzzImage) }
func FuzzVMDK(f *testing.F)  { f.Fuzz(fuzzImage) }
func FuzzVHD(f *testing.F)   { f.Fuzz(fuzzImage) }

// gptFuzzDisk is the smallest disk FuzzGPT reads: a fuzz input is the start
// of a disk of at least this size, the rest zero. The seed is then only the
// sectors that are not zero (a few hundred bytes instead of 48 KiB), which
// keeps every execution and every minimisation fast.
const gptFuzzDisk = 48 << 10

// FuzzGPT reads partition tables from arbitrary disks.
func FuzzGPT(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		disk := make([]byte, max(len(data), gptFuzzDisk))
		copy(disk, data)
		data = disk
		g, err := ReadGPT(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if _, _, err := g.Encode(int64(len(data)) / 512 * 512); err != nil && len(g.Partitions) == 0 {
			t.Fatalf("encode a table without partitions: %v", err)
		}
	})
}

// TestWriteSeeds regenerates the fuzz seed corpora (small qemu-img and
// sgdisk outputs) when KEYHOLDER_WRITE_SEEDS is set.
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("KEYHOLDER_WRITE_SEEDS") == "" {
		return
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	data := make([]byte, 64<<10)
	rand.Read(data[:8192])
	mustWrite(t, src, data)
	seeds := map[string][][]string{
		"FuzzQCOW2": {{"-O", "qcow2", "-o", "cluster_size=512"}, {"-O", "qcow2", "-c", "-o", "cluster_size=4096"}, {"-O", "qcow2", "-o", "compat=0.10,cluster_size=512"}},
		"FuzzVMDK":  {{"-O", "vmdk", "-o", "subformat=streamOptimized"}},
		"FuzzVHD":   {{"-O", "vpc", "-o", "subformat=fixed,force_size=on"}},
	}
	for name, variants := range seeds {
		for i, args := range variants {
			out := filepath.Join(dir, name+strconv.Itoa(i))
			runTool(t, "qemu-img", append(append([]string{"convert", "-f", "raw"}, args...), src, out)...)
			writeSeed(t, name, "seed"+strconv.Itoa(i), out)
		}
	}
	// A dynamic VHD of an empty disk: no blocks, so a small seed.
	empty := filepath.Join(dir, "empty.raw")
	mustWrite(t, empty, make([]byte, 64<<10))
	vhd := filepath.Join(dir, "dyn.vhd")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", empty, vhd)
	writeSeed(t, "FuzzVHD", "seed1", vhd)
	g := filepath.Join(dir, "gpt.raw")
	mustWrite(t, g, make([]byte, gptFuzzDisk))
	runTool(t, "sgdisk", "-a", "1", "-n", "1:34:50", "-n", "2:51:60", g)
	// FuzzGPT pads its input with zeros: keep the table without its zero tail.
	b, err := os.ReadFile(g)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, bytes.TrimRight(b[:2*512+32*512], "\x00"))
	writeSeed(t, "FuzzGPT", "seed0", g)
}

// writeSeed writes the file at path as seed name of fuzz target fuzz.
func writeSeed(t *testing.T, fuzz, name, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fuzzseed.Write(t, fuzz, name, b)
}

// mustWrite writes a file a seed is made from, failing the test on error.
func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
