package diskimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gptDisk makes a 64 MiB GPT disk with sgdisk: an ESP, an extended boot
// partition, a root partition and one behind it, each full of random data
// with a filesystem magic.
func gptDisk(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	p, data := sourceDisk(t, dir, 64<<20)
	runTool(t, "sgdisk", "-Z", p) // sourceDisk's MBR goes; a GPT disk follows
	runTool(t, "sgdisk", "-n", "1:2048:+8M", "-t", "1:ef00", "-c", "1:esp",
		"-n", "2:0:+8M", "-t", "2:ea00", "-c", "2:boot",
		"-n", "3:0:+32M", "-t", "3:8304", "-c", "3:root",
		"-n", "4:0:0", "-t", "4:8300", "-c", "4:home", p)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[1<<20+0x52:], "FAT32   ")
	copy(b[9<<20+1080:], "\x53\xef")
	copy(b[17<<20+1080:], "\x53\xef")
	copy(b[49<<20+1080:], "\x53\xef")
	os.WriteFile(p, b, 0o644)
	if out := runTool(t, "sgdisk", "-v", p); !strings.Contains(out, "No problems found") {
		t.Fatalf("fixture: %s", out)
	}
	_ = data
	return p, b
}

func TestPrepareOS(t *testing.T) {
	for _, sectorSize := range []int{512, 4096} {
		t.Run(map[int]string{512: "512", 4096: "4096"}[sectorSize], func(t *testing.T) {
			c := newConsole(t)
			dir := t.TempDir()
			src, want := gptDisk(t, dir)
			info, err := Inspect(src)
			if err != nil || info.PartitionTable != "gpt" || len(info.Partitions) != 4 || info.Root != 3 {
				t.Fatalf("inspect: %+v %v", info, err)
			}
			if fs := []string{info.Partitions[0].Filesystem, info.Partitions[2].Filesystem}; fs[0] != "vfat" || fs[1] != "ext4" {
				t.Fatalf("filesystems %v", fs)
			}
			// VMDK input, to cross a reader with os mode.
			vm := filepath.Join(dir, "src.vmdk")
			runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", src, vm)
			dst := filepath.Join(dir, "os.img")
			res, err := Prepare(context.Background(), Options{Source: vm, Dest: dst, Mode: ModeOS, SectorSize: sectorSize,
				RecoveryPassphrase: []byte("recovery words"), RecoveryKDF: cheapRecovery}, c.reg)
			if err != nil {
				t.Fatal(err)
			}
			if out := runTool(t, "sgdisk", "-v", dst); !strings.Contains(out, "No problems found") {
				t.Fatalf("sgdisk -v: %s", out)
			}
			out, _ := os.ReadFile(dst)
			const shift = luksHeaderSize
			if len(out) != len(want)+shift {
				t.Fatalf("output of %d bytes, want %d", len(out), len(want)+shift)
			}
			// ESP and /boot unchanged in place, home moved by the header.
			if !bytes.Equal(out[1<<20:17<<20], want[1<<20:17<<20]) {
				t.Fatal("ESP or /boot changed")
			}
			homeEnd := len(want) - 33*512
			if !bytes.Equal(out[49<<20+shift:homeEnd+shift], want[49<<20:homeEnd]) {
				t.Fatal("home partition not moved intact")
			}
			if !bytes.Equal(out[:440], want[:440]) {
				t.Fatal("MBR boot code lost")
			}
			m := res.Manifest
			if m.OS == nil || m.OS.RootPartition != 3 || !strings.Contains(m.OS.KernelCmdline, m.LUKSUUID) {
				t.Fatalf("manifest os %+v", m.OS)
			}
			checkVolume(t, c, dst, 17<<20, want[17<<20:49<<20], &m, []byte("recovery words"))
			g, err := ReadGPT(bytes.NewReader(out), int64(len(out)))
			if err != nil {
				t.Fatal(err)
			}
			p3, p4 := g.Partitions[2], g.Partitions[3]
			if p3.Size() != 32<<20+shift || p3.Offset() != 17<<20 || p4.Offset() != 49<<20+shift || p3.Name != "root" || p3.UUID != info.Partitions[2].UUID {
				t.Fatalf("new GPT %+v %+v", p3, p4)
			}
			if DetectFilesystem(bytes.NewReader(out[17<<20:])) != "crypto_LUKS" {
				t.Fatal("root partition is not LUKS")
			}
		})
	}
}

// TestPrepareOSCloudSizes: Compute Engine imports only a disk.raw whose
// size is a whole number of GiB, and Azure a VHD of whole MiB; an os-mode
// disk grows to that size with its backup GPT at the new end, so the
// partition table stays valid on the cloud's disk.
func TestPrepareOSCloudSizes(t *testing.T) {
	c := newConsole(t)
	dir := t.TempDir()
	src, _ := gptDisk(t, dir)
	for _, tc := range []struct {
		output string
		align  int64
	}{{OutputGCP, 1 << 30}, {OutputAzure, 1 << 20}} {
		t.Run(tc.output, func(t *testing.T) {
			dst := filepath.Join(dir, "os-"+tc.output)
			res, err := Prepare(context.Background(), Options{Source: src, Dest: dst, Mode: ModeOS, Output: tc.output, Name: "os-" + tc.output}, c.reg)
			if err != nil {
				t.Fatal(err)
			}
			raw := filepath.Join(t.TempDir(), "disk.raw")
			switch tc.output {
			case OutputGCP:
				f, _ := os.Open(dst)
				defer f.Close()
				zr, err := gzip.NewReader(f)
				if err != nil {
					t.Fatal(err)
				}
				tr := tar.NewReader(zr)
				h, err := tr.Next()
				if err != nil || h.Name != "disk.raw" {
					t.Fatalf("tar: %v %v", h, err)
				}
				out, _ := os.Create(raw)
				if _, err := io.Copy(out, tr); err != nil {
					t.Fatal(err)
				}
				out.Close()
				if _, err := tr.Next(); err != io.EOF {
					t.Fatalf("more than one member in the tarball: %v", err)
				}
			case OutputAzure:
				b, _ := os.ReadFile(dst)
				os.WriteFile(raw, b[:len(b)-512], 0o600)
			}
			st, _ := os.Stat(raw)
			if st.Size()%tc.align != 0 {
				t.Fatalf("the disk is %d bytes, not a multiple of %d", st.Size(), tc.align)
			}
			if res.Manifest.Output.DiskSize != st.Size() {
				t.Fatalf("manifest says the disk is %d bytes, it is %d", res.Manifest.Output.DiskSize, st.Size())
			}
			if out := runTool(t, "sgdisk", "-v", raw); !strings.Contains(out, "No problems found") {
				t.Fatalf("sgdisk -v: %s", out)
			}
		})
	}
}
