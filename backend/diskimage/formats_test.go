package diskimage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOpenRefusesContainers: every container qemu-img knows that Keyholder
// does not read is refused by name, never taken as raw, and the command in
// the refusal really converts it (for the formats qemu-img writes).
func TestOpenRefusesContainers(t *testing.T) {
	dir := t.TempDir()
	src, want := sourceDisk(t, dir, 2<<20)
	qemuMade := []struct{ driver, name string }{
		{"qed", "a QED image"},
		{"parallels", "a Parallels image"},
		{"qcow", "a QCOW version 1 image"},
	}
	for _, q := range qemuMade {
		t.Run(q.driver, func(t *testing.T) {
			p := filepath.Join(dir, "disk."+q.driver)
			runTool(t, "qemu-img", "convert", "-f", "raw", "-O", q.driver, src, p)
			ce := refused(t, p, q.name)
			if ce.Driver != q.driver || ce.Path != p {
				t.Fatalf("refusal %+v", ce)
			}
			// The command in the message converts the image to a raw disk
			// that Keyholder reads back as the source.
			cmd := ce.Command()
			if !strings.HasPrefix(cmd, "qemu-img convert -f "+q.driver+" -O raw ") {
				t.Fatalf("command %q", cmd)
			}
			if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			f, err := OpenFile(filepath.Join(dir, "disk.raw"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			defer os.Remove(filepath.Join(dir, "disk.raw"))
			if f.Format() != Raw || !bytes.Equal(readAll(t, f), want) {
				t.Fatal("the converted disk differs from the source")
			}
		})
	}
	// Formats qemu-img reads but does not write: their signatures as the
	// probes of qemu's block drivers (and the formats' specs) place them.
	disk := func(patch func(b []byte)) []byte {
		b := make([]byte, 2<<20)
		rand.Read(b)
		patch(b)
		return b
	}
	synthetic := []struct {
		name, want, driver string
		data               []byte
	}{
		{"bochs", "a Bochs image", "bochs", disk(func(b []byte) { copy(b, "Bochs Virtual HD Image\x00") })},
		{"cloop", "a cloop compressed image", "cloop", disk(func(b []byte) {
			copy(b, "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n")
		})},
		{"dmg", "an Apple disk image (DMG)", "dmg", disk(func(b []byte) { copy(b[len(b)-512:], "koly\x00\x00\x00\x04\x00\x00\x02\x00") })},
		{"cowd", "a VMware ESX/GSX sparse (COWD) VMDK", "vmdk", disk(func(b []byte) { copy(b, "COWD\x01\x00\x00\x00") })},
		{"parallels-ext", "a Parallels image", "parallels", disk(func(b []byte) { copy(b, "WithouFreSpacExt\x02\x00\x00\x00") })},
		{"iso", "an ISO 9660 CD/DVD image", "", disk(func(b []byte) { writeMBR(b); copy(b[0x8000:], "\x01CD001\x01") })},
		{"xz", "an xz-compressed file", "", disk(func(b []byte) { copy(b, "\xfd7zXZ\x00") })},
		{"gzip", "a gzip-compressed file", "", disk(func(b []byte) { copy(b, "\x1f\x8b\x08\x00") })},
		{"ova", "a tar archive", "", disk(func(b []byte) { copy(b[257:], "ustar\x0000") })},
	}
	for _, s := range synthetic {
		t.Run(s.name, func(t *testing.T) {
			p := filepath.Join(dir, s.name+".img")
			os.WriteFile(p, s.data, 0o644)
			ce := refused(t, p, s.want)
			if ce.Driver != s.driver {
				t.Fatalf("driver %q, want %q", ce.Driver, s.driver)
			}
			if s.driver == "" && (ce.Hint == "" || ce.Command() != "") {
				t.Fatalf("no conversion hint: %+v", ce)
			}
			if _, err := Inspect(p); err == nil || !strings.Contains(err.Error(), s.want) {
				t.Fatalf("Inspect: %v", err)
			}
		})
	}
}

// refused opens p, expects a *ContainerError naming want and returns it.
func refused(t *testing.T, p, want string) *ContainerError {
	t.Helper()
	f, err := OpenFile(p)
	if err == nil {
		f.Close()
		t.Fatalf("%s was opened as %s", p, f.Format())
	}
	var ce *ContainerError
	if !errors.As(err, &ce) || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ce.Remedy()) {
		t.Fatalf("err %v, want a refusal of %s", err, want)
	}
	return ce
}

// A VHD whose footer lost its last (reserved) byte is still a VHD.
func TestVHD511ByteFooter(t *testing.T) {
	dir := t.TempDir()
	src, want := sourceDisk(t, dir, 3<<20)
	p := filepath.Join(dir, "fixed.vhd")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", src, p)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-1], 0o644)
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Format() != VHD || f.Size() != int64(len(want)) || !bytes.Equal(readAll(t, f), want) {
		t.Fatalf("read as %s of %d bytes", f.Format(), f.Size())
	}
}

// setVHDXLogGUID marks a VHDX's headers as having a log to replay.
func setVHDXLogGUID(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{64 << 10, 128 << 10} {
		h := b[off : off+4096]
		copy(h[48:64], "0123456789abcdef")
		binary.LittleEndian.PutUint32(h[4:], 0)
		binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h, castagnoli))
	}
	os.WriteFile(p, b, 0o644)
}

// TestVHDXRefusals: a VHDX with damaged headers, or with a log to replay
// larger than the in-memory replay takes, is refused; one damaged header
// of two, or a log GUID without log entries (qemu opens it too), is not.
func TestVHDXRefusals(t *testing.T) {
	dir := t.TempDir()
	src, want := sourceDisk(t, dir, 2<<20)
	base := filepath.Join(dir, "base.vhdx")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "vhdx", src, base)
	b, _ := os.ReadFile(base)
	dirty := filepath.Join(dir, "dirty.vhdx")
	os.WriteFile(dirty, b, 0o644)
	setVHDXLogGUID(t, dirty)
	noHeaders := filepath.Join(dir, "noheaders.vhdx")
	nb := bytes.Clone(b)
	nb[64<<10+20] ^= 1
	nb[128<<10+20] ^= 1
	os.WriteFile(noHeaders, nb, 0o644)
	oneHeader := filepath.Join(dir, "oneheader.vhdx")
	ob := bytes.Clone(b)
	ob[64<<10+20] ^= 1 // the other header is still valid
	os.WriteFile(oneHeader, ob, 0o644)
	// A log to replay that is larger than the memory replay allows.
	bigLog := filepath.Join(dir, "biglog.vhdx")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "log_size=32M", src, bigLog)
	setVHDXLogGUID(t, bigLog)
	cases := []struct {
		name, path, wantErr string
		wantIs              error
	}{
		{"no valid header", noHeaders, "without a valid header", ErrCorrupt},
		{"log too large to replay", bigLog, "with a 32 MiB log to replay (at most 16 MiB are replayed); attach it once in Hyper-V (or run qemu-img check -r all on a copy)", ErrUnsupported},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := OpenFile(tc.path)
			if err == nil {
				f.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.wantIs) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v", err)
			}
		})
	}
	for _, p := range []string{oneHeader, dirty} {
		f, err := OpenFile(p)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		if got := readAll(t, f); !bytes.Equal(got, want) || strings.Contains(f.Detail(), "replayed") {
			t.Fatalf("%s reads differently (%s)", filepath.Base(p), f.Detail())
		}
		f.Close()
	}
}

// TestVHDXLogReplay: qemu is made to fail the write that applies its log
// (blkdebug injects an I/O error at the BAT), which leaves a VHDX whose
// newest data block is known only to the log. Keyholder replays the log in
// memory, without writing the source, and reads what qemu reads after
// qemu-img check -r all replayed it on a copy.
func TestVHDXLogReplay(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dirty.vhdx")
	makeDirtyVHDX(t, p)
	before, _ := os.ReadFile(p)

	// What qemu reads once it replayed the log of a copy.
	cp := filepath.Join(dir, "copy.vhdx")
	os.WriteFile(cp, before, 0o644)
	runTool(t, "qemu-img", "check", "-r", "all", cp)
	raw := filepath.Join(dir, "replayed.raw")
	runTool(t, "qemu-img", "convert", "-f", "vhdx", "-O", "raw", cp, raw)
	want, _ := os.ReadFile(raw)
	if !bytes.Equal(want[1<<20:1<<20+4096], bytes.Repeat([]byte{0xab}, 4096)) {
		t.Fatal("qemu's replay does not show the logged block")
	}

	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !strings.Contains(f.Detail(), "log replayed") || f.Size() != 8<<20 {
		t.Fatalf("%s of %d bytes", f.Detail(), f.Size())
	}
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatal("the replayed VHDX reads differently from qemu's replay")
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(after, before) {
		t.Fatal("the source was written")
	}
}

// TestVMDKDescriptorExtents: multi-extent descriptors (2 GiB pieces, as
// qemu-img writes them for a 5 GiB disk) are read across extent
// boundaries; extents outside the descriptor's folder are refused by name.
func TestVMDKDescriptorExtents(t *testing.T) {
	dir := t.TempDir()
	const size = 5 << 30
	src := filepath.Join(dir, "big.raw")
	sf, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	sf.Truncate(size)
	pieces := map[int64][]byte{}
	for _, off := range []int64{0, 2<<30 - 4096, 4<<30 - 512, size - 65536} {
		b := make([]byte, 65536)
		rand.Read(b)
		sf.WriteAt(b, off)
		pieces[off] = b
	}
	sf.Close()
	for _, sub := range []string{"twoGbMaxExtentSparse", "twoGbMaxExtentFlat"} {
		t.Run(sub, func(t *testing.T) {
			d := filepath.Join(dir, sub)
			os.Mkdir(d, 0o755)
			p := filepath.Join(d, "disk.vmdk")
			runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, src, p)
			f, err := OpenFile(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Size() != size || f.Detail() != "vmdk "+sub+", 3 extent files" {
				t.Fatalf("%s of %d bytes", f.Detail(), f.Size())
			}
			for off, want := range pieces {
				got := make([]byte, len(want)+4096)
				n, err := f.ReadAt(got, off-2048)
				if off == 0 {
					n, err = f.ReadAt(got[2048:], 0)
					got = append(make([]byte, 2048), got[2048:2048+n]...)
				}
				if off+int64(len(want)) == size {
					if n != len(want)+2048 {
						t.Fatalf("read at the end: %d, %v", n, err)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[2048:2048+len(want)], want) || !allZero(got[:2048]) {
					t.Fatalf("bytes at %d differ", off)
				}
			}
		})
	}

	// Descriptors that name files elsewhere.
	d := filepath.Join(dir, "evil")
	os.Mkdir(d, 0o755)
	secret := filepath.Join(dir, "secret.raw")
	os.WriteFile(secret, make([]byte, 1<<20), 0o644)
	os.WriteFile(filepath.Join(d, "ok-flat.vmdk"), make([]byte, 1<<20), 0o644)
	os.Symlink(secret, filepath.Join(d, "link-flat.vmdk"))
	desc := func(extent string) string {
		return "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n" + extent + "\n"
	}
	cases := []struct{ name, extent, wantErr string }{
		{"parent folder", `RW 2048 FLAT "../secret.raw" 0`, `"../secret.raw" is not a file in the descriptor's folder`},
		{"absolute", `RW 2048 FLAT "` + secret + `" 0`, "is not a file in the descriptor's folder"},
		{"subfolder", `RW 2048 FLAT "sub/x.vmdk" 0`, "is not a file in the descriptor's folder"},
		{"backslash", `RW 2048 FLAT "..\\secret.raw" 0`, "is not a file in the descriptor's folder"},
		{"dot dot", `RW 2048 FLAT ".." 0`, "is not a file in the descriptor's folder"},
		{"symlink", `RW 2048 FLAT "link-flat.vmdk" 0`, `"link-flat.vmdk" is not a regular file`},
		{"itself", `RW 2048 FLAT "desc.vmdk" 0`, "is the descriptor itself"},
		{"missing", `RW 2048 FLAT "gone-flat.vmdk" 0`, `"gone-flat.vmdk"`},
		{"past the end", `RW 4096 FLAT "ok-flat.vmdk" 0`, "the descriptor needs"},
		{"raw device", `RW 2048 VMFSRDM "ok-flat.vmdk"`, "extent type VMFSRDM"},
		{"delta", `RW 2048 VMFSSPARSE "ok-flat.vmdk"`, "delta"},
		{"sparse that is flat", `RW 2048 SPARSE "ok-flat.vmdk"`, `"ok-flat.vmdk"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(d, "desc.vmdk")
			os.WriteFile(p, []byte(desc(tc.extent)), 0o644)
			f, err := OpenFile(p)
			if err == nil {
				f.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
	// The same folder's file is read, a ZERO extent reads zeros.
	p := filepath.Join(d, "good.vmdk")
	os.WriteFile(p, []byte(desc("RW 2048 FLAT \"ok-flat.vmdk\" 0\nRW 2048 ZERO")), 0o644)
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != 2<<20 || !allZero(readAll(t, f)) {
		t.Fatalf("good descriptor: %d bytes", f.Size())
	}
	// A descriptor that starts with other comments, as qemu's probe allows.
	os.WriteFile(p, []byte("# written by hand\n\nversion=1\ncreateType=\"vmfs\"\nRW 2048 VMFS \"ok-flat.vmdk\"\n"), 0o644)
	g, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if g.Size() != 1<<20 || g.Detail() != "vmdk vmfs, 1 extent file" {
		t.Fatalf("%s of %d bytes", g.Detail(), g.Size())
	}
	g.Close()
	// Open without a path refuses a descriptor rather than taking it as raw.
	b, _ := os.ReadFile(p)
	if _, err := Open(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "VMDK descriptor") {
		t.Fatalf("Open of a descriptor: %v", err)
	}
}

// TestRawWarning: a raw file with no partition table and no recognised
// filesystem is flagged by Inspect and refused by Prepare unless the
// officer confirmed it; disks with an MBR, a GPT or a filesystem are not.
func TestRawWarning(t *testing.T) {
	c := newConsole(t)
	dir := t.TempDir()
	noise := make([]byte, 2<<20)
	rand.Read(noise)
	unknown := filepath.Join(dir, "unknown.img")
	os.WriteFile(unknown, noise, 0o644)
	blank := filepath.Join(dir, "blank.img")
	os.WriteFile(blank, make([]byte, 2<<20), 0o644)
	ext4 := bytes.Clone(noise)
	copy(ext4[1080:], "\x53\xef")
	fsDisk := filepath.Join(dir, "ext4.img")
	os.WriteFile(fsDisk, ext4, 0o644)
	mbrDisk, _ := sourceDisk(t, dir, 2<<20)
	for _, tc := range []struct {
		path string
		warn bool
	}{{unknown, true}, {blank, true}, {fsDisk, false}, {mbrDisk, false}} {
		info, err := Inspect(tc.path)
		if err != nil || (info.RawWarning != "") != tc.warn {
			t.Fatalf("%s: warning %q, %v", filepath.Base(tc.path), info.RawWarning, err)
		}
	}
	out := t.TempDir()
	_, err := Prepare(context.Background(), Options{Source: unknown, Dest: filepath.Join(out, "a.img"), Name: "a"}, c.reg)
	if !errors.Is(err, ErrUnrecognisedRaw) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no partition table") {
		t.Fatalf("unconfirmed: %v", err)
	}
	assertOnly(t, out)
	res, err := Prepare(context.Background(), Options{Source: unknown, Dest: filepath.Join(out, "a.img"), Name: "a", ConfirmRaw: true, SectorSize: 512}, c.reg)
	if err != nil {
		t.Fatalf("confirmed: %v", err)
	}
	if res.Manifest.Source.Format != Raw || res.Manifest.Source.SHA256 != sha(noise) {
		t.Fatalf("manifest source %+v", res.Manifest.Source)
	}
}

// TestPrepareContainers prepares images qemu-img wrote in the formats this
// change reads; each payload decrypts to exactly the source's bytes.
func TestPrepareContainers(t *testing.T) {
	c := newConsole(t)
	dir := t.TempDir()
	src, want := sourceDisk(t, dir, 3<<20+512)
	for _, tc := range []struct {
		name   string
		args   []string
		format Format
	}{
		{"vhdx-dynamic", []string{"-O", "vhdx", "-o", "subformat=dynamic"}, VHDX},
		{"vhdx-fixed", []string{"-O", "vhdx", "-o", "subformat=fixed"}, VHDX},
		{"vdi-dynamic", []string{"-O", "vdi"}, VDI},
		{"vdi-static", []string{"-O", "vdi", "-o", "static=on"}, VDI},
		{"vmdk-flat", []string{"-O", "vmdk", "-o", "subformat=monolithicFlat"}, VMDK},
		{"vmdk-split-sparse", []string{"-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"}, VMDK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+"."+string(tc.format))
			runTool(t, "qemu-img", append(append([]string{"convert", "-f", "raw"}, tc.args...), src, p)...)
			dst := filepath.Join(dir, tc.name+".out")
			res, err := Prepare(context.Background(), Options{Source: p, Dest: dst, Name: tc.name, SectorSize: 512,
				RecoveryPassphrase: []byte("r"), RecoveryKDF: cheapRecovery}, c.reg)
			if err != nil {
				t.Fatal(err)
			}
			m := res.Manifest
			if m.Source.Format != tc.format || m.Source.VirtualSize != int64(len(want)) || m.Source.SHA256 != sha(want) {
				t.Fatalf("manifest source %+v", m.Source)
			}
			checkVolume(t, c, dst, 0, want, &m, []byte("r"))
		})
	}
}

// makeDirtyVHDX has qemu write an 8 MiB dynamic VHDX at p whose last
// write (4 KiB of 0xab at 1 MiB) reached the log and the data
// area but not the BAT: blkdebug fails qemu's write to the BAT.
func makeDirtyVHDX(t *testing.T, p string) {
	t.Helper()
	runTool(t, "qemu-img", "create", "-f", "vhdx", "-o", "subformat=dynamic,block_size=1M", p, "8M")
	b, _ := os.ReadFile(p)
	var batOff int64
	for i := 0; i < int(binary.LittleEndian.Uint32(b[192<<10+8:])); i++ {
		e := b[192<<10+16+32*i:][:32]
		if [16]byte(e[:16]) == vhdxBATRegion {
			batOff = int64(binary.LittleEndian.Uint64(e[16:]))
		}
	}
	if batOff == 0 {
		t.Fatal("no BAT region in qemu-img's VHDX")
	}
	opts := "driver=vhdx,file.driver=blkdebug,file.image.driver=file,file.image.filename=" + p +
		",file.inject-error.0.event=pwritev,file.inject-error.0.iotype=write,file.inject-error.0.errno=5,file.inject-error.0.sector=" + strconv.FormatInt(batOff/512, 10)
	out, err := exec.Command(tool(t, "qemu-io"), "--image-opts", opts, "-c", "write -P 0xab 1M 4k").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "write failed") {
		t.Fatalf("qemu-io did not fail the BAT write: %v\n%s", err, out)
	}
	if out, err := exec.Command(tool(t, "qemu-img"), "info", p).CombinedOutput(); err == nil || !strings.Contains(string(out), "log that needs to be replayed") {
		t.Fatalf("the image is not dirty: %v\n%s", err, out)
	}
}

// BenchmarkContainerRead reads a 256 MiB disk (random data) in 4 MiB
// chunks, as Prepare's reader does, from each format qemu-img writes it in.
func BenchmarkContainerRead(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src.raw")
	data := make([]byte, 256<<20)
	for i := 0; i < len(data); i += 1 << 20 {
		rand.Read(data[i : i+1<<20])
	}
	os.WriteFile(src, data, 0o644)
	for _, tc := range []struct{ name, args string }{
		{"raw", ""},
		{"qcow2", "-O qcow2"},
		{"vhdx-dynamic", "-O vhdx -o subformat=dynamic"},
		{"vdi-dynamic", "-O vdi"},
		{"vmdk-monolithicFlat", "-O vmdk -o subformat=monolithicFlat"},
	} {
		p := src
		if tc.args != "" {
			p = filepath.Join(dir, tc.name+".img")
			runTool(b, "qemu-img", append(append([]string{"convert", "-f", "raw"}, strings.Fields(tc.args)...), src, p)...)
		}
		b.Run(tc.name, func(b *testing.B) {
			f, err := OpenFile(p)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 4<<20)
			b.SetBytes(f.Size())
			for b.Loop() {
				for off := int64(0); off < f.Size(); off += int64(len(buf)) {
					if _, err := f.ReadAt(buf, off); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
