package diskimage

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"keyholder/internal/fuzzseed"
)

// VHDX and VDI images are mostly zeros (a VHDX has 1 MiB-aligned regions),
// so their fuzz inputs are sparse files: an 8-byte little-endian file
// size, then pieces of a 4-byte offset, a 2-byte length and the bytes;
// everything else reads as zeros. Seeds hold qemu-img's images this way.

const maxSparseFuzzSize = 64 << 20

type sparseFile struct {
	size   int64
	pieces []sparsePiece
}

type sparsePiece struct {
	off  int64
	data []byte
}

func decodeSparse(b []byte) (*sparseFile, bool) {
	if len(b) < 8 {
		return nil, false
	}
	s := &sparseFile{size: int64(binary.LittleEndian.Uint64(b))}
	if s.size < 0 || s.size > maxSparseFuzzSize {
		return nil, false
	}
	b = b[8:]
	for len(b) >= 6 {
		off, n := int64(binary.LittleEndian.Uint32(b)), int(binary.LittleEndian.Uint16(b[4:]))
		b = b[6:]
		n = min(n, len(b))
		if off < s.size {
			s.pieces = append(s.pieces, sparsePiece{off, b[:min(int64(n), s.size-off)]})
		}
		b = b[n:]
	}
	return s, true
}

func (s *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.size-off))
	clear(p[:n])
	for _, pc := range s.pieces {
		lo, hi := max(off, pc.off), min(off+int64(n), pc.off+int64(len(pc.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], pc.data[lo-pc.off:hi-pc.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// encodeSparse keeps the non-zero 512-byte runs of b.
func encodeSparse(b []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(b)))
	zero := make([]byte, 512)
	for off := 0; off < len(b); {
		if end := min(off+512, len(b)); bytes.Equal(b[off:end], zero[:end-off]) {
			off = end
			continue
		}
		end := off
		for end < len(b) && end-off < 32<<10 {
			e := min(end+512, len(b))
			if bytes.Equal(b[end:e], zero[:e-end]) {
				break
			}
			end = e
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(off))
		out = binary.LittleEndian.AppendUint16(out, uint16(end-off))
		out = append(out, b[off:end]...)
		off = end
	}
	return out
}

func fuzzSparse(t *testing.T, data []byte) {
	s, ok := decodeSparse(data)
	if !ok {
		return
	}
	im, err := Open(s, s.size)
	if err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	for _, off := range []int64{0, im.Size() / 2, im.Size() - 1000} {
		if off < 0 {
			continue
		}
		if n, _ := im.ReadAt(buf, off); n < 0 || n > len(buf) {
			t.Fatalf("ReadAt returned %d", n)
		}
	}
	_ = im.Detail()
}

// FuzzVHDX and FuzzVDI open and read sparse-encoded images.
func FuzzVHDX(f *testing.F) { f.Fuzz(fuzzSparse) }

// FuzzVDI: see FuzzVHDX.
func FuzzVDI(f *testing.F) { f.Fuzz(fuzzSparse) }

// FuzzProbe opens small files whose start or end looks like a container
// signature: a refusal or a reader, never a panic.
func FuzzProbe(f *testing.F) { f.Fuzz(fuzzImage) }

// FuzzVMDKDescriptor parses descriptor text: never a panic, and no extent
// name it accepts leaves the descriptor's folder.
func FuzzVMDKDescriptor(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		_, extents, err := parseVMDKDescriptor(data)
		if err != nil {
			return
		}
		for _, e := range extents {
			if validExtentName(e.name, "self.vmdk") != nil {
				continue
			}
			if filepath.Base(e.name) != e.name || strings.ContainsAny(e.name, `/\`) || e.name == ".." || e.name == "." || filepath.IsAbs(e.name) {
				t.Fatalf("extent name %q accepted", e.name)
			}
		}
	})
}

// TestWriteFormatSeeds regenerates the seed corpora of the fuzz targets
// above from qemu-img's output when KEYHOLDER_WRITE_SEEDS is set (run it
// alone: go test -run TestWriteFormatSeeds).
func TestWriteFormatSeeds(t *testing.T) {
	if os.Getenv("KEYHOLDER_WRITE_SEEDS") == "" {
		return
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	data := make([]byte, 3<<20)
	for i := range 8192 {
		data[i] = byte(i * 7)
		data[2<<20+i] = byte(i * 13)
	}
	mustWrite(t, src, data)
	seeds := map[string][][]string{
		"FuzzVHDX": {{"-O", "vhdx", "-o", "subformat=dynamic,block_size=1M"}, {"-O", "vhdx", "-o", "subformat=fixed,block_size=1M"}},
		"FuzzVDI":  {{"-O", "vdi"}, {"-O", "vdi", "-o", "static=on"}},
	}
	for name, variants := range seeds {
		for i, args := range variants {
			out := filepath.Join(dir, name+strconv.Itoa(i))
			runTool(t, "qemu-img", append(append([]string{"convert", "-f", "raw"}, args...), src, out)...)
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			fuzzseed.Write(t, name, "seed"+strconv.Itoa(i), encodeSparse(b))
		}
	}
	dirty := filepath.Join(dir, "dirty.vhdx")
	makeDirtyVHDX(t, dirty)
	b, err := os.ReadFile(dirty)
	if err != nil {
		t.Fatal(err)
	}
	fuzzseed.Write(t, "FuzzVHDX", "dirty-log", encodeSparse(b))
	// Small files with each signature Open knows, at its offset.
	probes := map[string]func(b []byte){
		"qcow1":     func(b []byte) { copy(b, "QFI\xfb\x00\x00\x00\x01") },
		"qed":       func(b []byte) { copy(b, "QED\x00") },
		"parallels": func(b []byte) { copy(b, "WithoutFreeSpace\x02\x00\x00\x00") },
		"vdi-text":  func(b []byte) { copy(b, "<<< Oracle VM VirtualBox Disk Image >>>\n") },
		"vdi-sig":   func(b []byte) { copy(b[0x40:], "\x7f\x10\xda\xbe\x01\x00\x01\x00") },
		"vhdx":      func(b []byte) { copy(b, "vhdxfile") },
		"dmg":       func(b []byte) { copy(b[len(b)-512:], "koly\x00\x00\x00\x04") },
		"vhd-511":   func(b []byte) { copy(b[len(b)-511:], "conectix") },
		"iso":       func(b []byte) { copy(b[0x8001:], "CD001") },
		"vmdk-desc": func(b []byte) { copy(b, "# Disk DescriptorFile\nRW 8 FLAT \"x.vmdk\" 0\n") },
		"luks":      func(b []byte) { copy(b, "LUKS\xba\xbe\x00\x02") },
	}
	names := make([]string, 0, len(probes))
	for n := range probes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := make([]byte, 1024)
		if n == "iso" {
			b = make([]byte, 0x8006)
		}
		probes[n](b)
		fuzzseed.Write(t, "FuzzProbe", n, b)
	}
	for _, sub := range []string{"monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"} {
		out := filepath.Join(dir, sub+".vmdk")
		runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, src, out)
		b, _ := os.ReadFile(out)
		fuzzseed.Write(t, "FuzzVMDKDescriptor", sub, bytes.TrimRight(b, "\x00 "))
	}
	fuzzseed.Write(t, "FuzzVMDKDescriptor", "escape", []byte("# Disk DescriptorFile\nparentCID=ffffffff\nRW 2048 FLAT \"../x\" 0\nRW 8 ZERO\nRW 8 VMFS \"/etc/x\"\n"))
}

// TestSparseSeedsOpen: the VHDX and VDI seeds are real images (the sparse
// encoding keeps them whole), so the fuzzers start from readable ones.
func TestSparseSeedsOpen(t *testing.T) {
	for _, name := range []string{"FuzzVHDX/seed0", "FuzzVHDX/seed1", "FuzzVDI/seed0", "FuzzVDI/seed1", "FuzzVHDX/dirty-log"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(raw), "\n", 2)
		q := strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(lines[1], "[]byte(")), ")")
		b, err := strconv.Unquote(q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s, ok := decodeSparse([]byte(b))
		if !ok {
			t.Fatalf("%s: not a sparse file", name)
		}
		im, err := Open(s, s.size)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "FuzzVHDX/dirty-log" {
			got := make([]byte, 4096)
			if _, err := im.ReadAt(got, 1<<20); err != nil || !strings.Contains(im.Detail(), "log replayed") || !bytes.Equal(got, bytes.Repeat([]byte{0xab}, 4096)) {
				t.Fatalf("%s: %s, %v", name, im.Detail(), err)
			}
			continue
		}
		got := make([]byte, 8192)
		if _, err := im.ReadAt(got, 2<<20); err != nil || im.Size() != 3<<20 {
			t.Fatalf("%s: %v", name, err)
		}
		for i, c := range got {
			if c != byte(i*13) {
				t.Fatalf("%s: byte %d of the second piece is %d", name, i, c)
			}
		}
	}
}
