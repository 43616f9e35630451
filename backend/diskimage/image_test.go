package diskimage

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Fatalf("%s is required (see .ci/apt-packages.txt): %v", name, err)
	}
	return p
}

func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sourceDisk writes a raw disk of size bytes with random data, zero runs
// and holes, so that readers meet allocated, zero and unallocated clusters.
func sourceDisk(t testing.TB, dir string, size int64) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	// zero runs of assorted lengths and alignments
	for off := int64(100 << 10); off < size; off += 900 << 10 {
		end := min(size, off+300<<10+off%4096)
		clear(data[off:end])
	}
	// a compressible run
	for i := size / 2; i < size/2+200<<10 && i < size; i++ {
		data[i] = byte(i / 4096)
	}
	// An MBR with one Linux partition over the rest of the disk, so that
	// the raw source is a recognised disk (see RawWarning).
	writeMBR(data)
	p := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// writeMBR puts an MBR with one partition (type 0x83, from sector 1 to
// the end) into disk.
func writeMBR(disk []byte) {
	clear(disk[446:510])
	e := disk[446:462]
	e[4] = 0x83
	binary.LittleEndian.PutUint32(e[8:], 1)
	binary.LittleEndian.PutUint32(e[12:], uint32(len(disk)/512-1))
	disk[510], disk[511] = 0x55, 0xaa
}

func readAll(t *testing.T, im Image) []byte {
	t.Helper()
	out := make([]byte, im.Size())
	// odd chunk sizes cross cluster, grain and block boundaries
	for off, step := int64(0), int64(77777); off < im.Size(); off += step {
		end := min(im.Size(), off+step)
		if n, err := im.ReadAt(out[off:end], off); err != nil || int64(n) != end-off {
			t.Fatalf("ReadAt(%d, %d): %d, %v", off, end-off, n, err)
		}
	}
	return out
}

// TestReadersMatchQemuImg converts a raw disk with qemu-img into every
// supported format and variant and reads it back byte for byte.
func TestReadersMatchQemuImg(t *testing.T) {
	dir := t.TempDir()
	const size = 5<<20 + 64<<10 // not a multiple of 1 MiB: VHD/VMDK tails
	src, want := sourceDisk(t, dir, size)
	cases := []struct {
		name   string
		args   []string
		format Format
		detail string
	}{
		{"raw", nil, Raw, "raw"},
		{"qcow2v2", []string{"-O", "qcow2", "-o", "compat=0.10"}, QCOW2, "qcow2 v2"},
		{"qcow2v3", []string{"-O", "qcow2", "-o", "compat=1.1,cluster_size=4096"}, QCOW2, "qcow2 v3"},
		{"qcow2-zlib", []string{"-O", "qcow2", "-c"}, QCOW2, "qcow2 v3"},
		{"qcow2-zlib-2M", []string{"-O", "qcow2", "-c", "-o", "cluster_size=2M"}, QCOW2, "qcow2 v3"},
		{"vmdk-sparse", []string{"-O", "vmdk", "-o", "subformat=monolithicSparse"}, VMDK, "monolithicSparse"},
		{"vmdk-stream", []string{"-O", "vmdk", "-o", "subformat=streamOptimized"}, VMDK, "streamOptimized"},
		{"vhd-fixed", []string{"-O", "vpc", "-o", "subformat=fixed,force_size=on"}, VHD, "vhd fixed"},
		{"vhd-dynamic", []string{"-O", "vpc", "-o", "subformat=dynamic,force_size=on"}, VHD, "vhd dynamic"},
		{"vhdx-dynamic", []string{"-O", "vhdx", "-o", "subformat=dynamic"}, VHDX, "vhdx dynamic"},
		{"vhdx-dynamic-1M", []string{"-O", "vhdx", "-o", "subformat=dynamic,block_size=1M,log_size=1M"}, VHDX, "vhdx dynamic, 1 MiB blocks"},
		{"vhdx-fixed", []string{"-O", "vhdx", "-o", "subformat=fixed"}, VHDX, "vhdx fixed"},
		{"vdi-dynamic", []string{"-O", "vdi"}, VDI, "vdi dynamic"},
		{"vdi-static", []string{"-O", "vdi", "-o", "static=on"}, VDI, "vdi static"},
		{"vmdk-monolithicFlat", []string{"-O", "vmdk", "-o", "subformat=monolithicFlat"}, VMDK, "vmdk monolithicFlat, 1 extent file"},
		{"vmdk-twoGbMaxExtentSparse", []string{"-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"}, VMDK, "vmdk twoGbMaxExtentSparse, 1 extent file"},
		{"vmdk-twoGbMaxExtentFlat", []string{"-O", "vmdk", "-o", "subformat=twoGbMaxExtentFlat"}, VMDK, "vmdk twoGbMaxExtentFlat, 1 extent file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := src
			if tc.args != nil {
				p = filepath.Join(dir, tc.name)
				runTool(t, "qemu-img", append(append([]string{"convert", "-f", "raw"}, tc.args...), src, p)...)
			}
			f, err := OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Format() != tc.format || !strings.Contains(f.Detail(), tc.detail) {
				t.Fatalf("detected %s (%s), want %s (%s)", f.Format(), f.Detail(), tc.format, tc.detail)
			}
			if f.Size() != size {
				t.Fatalf("virtual size %d, want %d", f.Size(), size)
			}
			if got := readAll(t, f); !bytes.Equal(got, want) {
				t.Fatal("virtual disk differs from the raw source")
			}
			// reads past the end are clipped with io.EOF
			buf := make([]byte, 1024)
			if n, err := f.ReadAt(buf, size-512); n != 512 || err == nil {
				t.Fatalf("read across the end: %d, %v", n, err)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	src, _ := sourceDisk(t, dir, 1<<20)
	base := filepath.Join(dir, "base.qcow2")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, base)
	over := filepath.Join(dir, "over.qcow2")
	runTool(t, "qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", base, over)
	vbase := filepath.Join(dir, "base.vmdk")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", src, vbase)
	vover := filepath.Join(dir, "over.vmdk")
	runTool(t, "qemu-img", "create", "-f", "vmdk", "-F", "vmdk", "-b", vbase, vover)
	luks := filepath.Join(dir, "luks.img")
	os.WriteFile(luks, append([]byte("LUKS\xba\xbe\x00\x02"), make([]byte, 8192)...), 0o644)
	truncated := filepath.Join(dir, "trunc.qcow2")
	b, _ := os.ReadFile(base)
	os.WriteFile(truncated, b[:70], 0o644)
	badL1 := filepath.Join(dir, "badl1.qcow2")
	b2 := bytes.Clone(b)
	copy(b2[40:48], []byte{0, 0, 0, 0x10, 0, 0, 0, 0})
	os.WriteFile(badL1, b2, 0o644)
	cases := []struct {
		name, path, wantErr string
		wantIs              error
	}{
		{"qcow2 backing file", over, "backing file", ErrUnsupported},
		{"vmdk delta", vover, "delta disk", ErrUnsupported},
		{"luks", luks, "already a LUKS volume", ErrUnsupported},
		{"truncated qcow2", truncated, "truncated", ErrCorrupt},
		{"qcow2 L1 outside", badL1, "L1 table", ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := OpenFile(tc.path)
			if err == nil {
				f.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.wantIs) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %v %q", err, tc.wantIs, tc.wantErr)
			}
		})
	}
}

// A file in no container format is taken as a raw disk only if its size is
// a whole number of 512-byte sectors and at least 1 MiB.
func TestRawSizeRefused(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"text file", []byte("hello, this is not a disk\n\n\n"), "size 28 is not a multiple of 512 bytes"},
		{"odd size", make([]byte, 1<<20+100), "size 1048676 is not a multiple of 512 bytes"},
		{"small", make([]byte, 512<<10), "size 524288 is smaller than 1 MiB"},
		{"empty", nil, "size 0 is smaller than 1 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if f, err := OpenFile(p); err == nil {
				f.Close()
				t.Fatal("OpenFile accepted it")
			} else if !errors.Is(err, ErrNotDiskImage) || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "not a disk image: "+tc.wantErr) {
				t.Fatalf("OpenFile: %v", err)
			}
			if _, err := Inspect(p); err == nil || !errors.Is(err, ErrNotDiskImage) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Inspect: %v", err)
			}
		})
	}
	// The smallest accepted raw disk.
	p := filepath.Join(dir, "ok.raw")
	os.WriteFile(p, make([]byte, 1<<20), 0o644)
	info, err := Inspect(p)
	if err != nil || info.Format != Raw || info.VirtualSize != 1<<20 {
		t.Fatalf("1 MiB raw disk: %+v, %v", info, err)
	}
}
