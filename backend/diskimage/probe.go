package diskimage

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Recognising containers. A file is taken as a raw disk only when no
// container signature that qemu's block drivers probe (block/*.c,
// bdrv_probe) or a common archive format matches. The formats this package
// reads are opened by Open; every other one is refused by name with the
// command that converts it, so that a container's bytes are never
// encrypted as if they were a disk.

// probeHead is how much of a file's start the probes look at: ISO 9660's
// volume descriptor sits at 0x8001.
const probeHead = 0x8800

// ContainerError refuses a file in a container format this package does
// not read. It wraps ErrUnsupported.
type ContainerError struct {
	// Name is the format's name as people know it ("QED", "Parallels").
	Name string
	// Driver is qemu-img's name of the format ("qed"); empty when
	// qemu-img does not convert it and Hint says what to do instead.
	Driver string
	// Hint replaces the conversion command where qemu-img has none.
	Hint string
	// Path is the file, when known (it goes into the command).
	Path string
}

func (e *ContainerError) Error() string {
	return fmt.Sprintf("%v: %s, which Keyholder does not read; %s", ErrUnsupported, e.Name, e.Remedy())
}

// Unwrap makes a ContainerError an ErrUnsupported.
func (e *ContainerError) Unwrap() error { return ErrUnsupported }

// Remedy says how to make a raw disk of the file: the qemu-img command,
// or the Hint where qemu-img does not apply.
func (e *ContainerError) Remedy() string {
	if e.Driver == "" {
		return e.Hint
	}
	return "convert it to a raw disk first: " + e.Command()
}

// Command is the qemu-img command that converts the file to a raw disk
// beside it (empty when qemu-img does not convert this format).
func (e *ContainerError) Command() string {
	if e.Driver == "" {
		return ""
	}
	src, dst := "SRC", "DST.raw"
	if e.Path != "" {
		src = e.Path
		dst = strings.TrimSuffix(e.Path, filepath.Ext(e.Path)) + ".raw"
		if dst == src {
			dst += ".raw"
		}
	}
	return fmt.Sprintf("qemu-img convert -f %s -O raw %s %s", e.Driver, shellQuote(src), shellQuote(dst))
}

// shellQuote quotes s for a POSIX shell where it needs quoting.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_./:@=+-,", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// A signature recognises one container format this package does not read.
type signature struct {
	name, driver, hint string
	match              func(head, tail []byte) bool
}

func at(b []byte, off int, magic string) bool {
	return off >= 0 && off+len(magic) <= len(b) && string(b[off:off+len(magic)]) == magic
}

// foreign lists the containers refused by name. Offsets and magics follow
// the probe functions of qemu's block drivers and the formats' specs.
var foreign = []signature{
	{name: "a QCOW version 1 image", driver: "qcow", match: func(h, _ []byte) bool { return at(h, 0, "QFI\xfb\x00\x00\x00\x01") }},
	{name: "a QED image", driver: "qed", match: func(h, _ []byte) bool { return at(h, 0, "QED\x00") }},
	{name: "a Parallels image", driver: "parallels", match: func(h, _ []byte) bool {
		return at(h, 0, "WithoutFreeSpace") || at(h, 0, "WithouFreSpacExt")
	}},
	{name: "a Bochs image", driver: "bochs", match: func(h, _ []byte) bool { return at(h, 0, "Bochs Virtual HD Image") }},
	{name: "a cloop compressed image", driver: "cloop", match: func(h, _ []byte) bool { return at(h, 0, "#!/bin/sh\n#V2.0 Format\n") }},
	{name: "a VMware ESX/GSX sparse (COWD) VMDK", driver: "vmdk", match: func(h, _ []byte) bool { return at(h, 0, "COWD") }},
	{name: "an Apple disk image (DMG)", driver: "dmg", match: func(_, t []byte) bool { return at(t, 0, "koly\x00\x00\x00\x04") }},
	{name: "an ISO 9660 CD/DVD image", hint: "it is an installer or data CD, not a VM disk: install the system onto a disk image and prepare that", match: func(h, _ []byte) bool {
		return at(h, 0x8001, "CD001")
	}},
	{name: "a gzip-compressed file", hint: "decompress it first (gunzip -k FILE), then prepare the disk inside", match: func(h, _ []byte) bool { return at(h, 0, "\x1f\x8b") }},
	{name: "an xz-compressed file", hint: "decompress it first (xz -dk FILE), then prepare the disk inside", match: func(h, _ []byte) bool { return at(h, 0, "\xfd7zXZ\x00") }},
	{name: "a zstd-compressed file", hint: "decompress it first (zstd -d FILE), then prepare the disk inside", match: func(h, _ []byte) bool { return at(h, 0, "\x28\xb5\x2f\xfd") }},
	{name: "a bzip2-compressed file", hint: "decompress it first (bunzip2 -k FILE), then prepare the disk inside", match: func(h, _ []byte) bool {
		return at(h, 0, "BZh") && len(h) > 4 && h[3] >= '1' && h[3] <= '9' && at(h, 4, "1AY&SY")
	}},
	{name: "a zip archive", hint: "extract the disk image from it first (unzip FILE), then prepare that", match: func(h, _ []byte) bool { return at(h, 0, "PK\x03\x04") }},
	{name: "a tar archive (an OVA?)", hint: "extract the disk image from it first (tar -xf FILE), then prepare that", match: func(h, _ []byte) bool { return at(h, 257, "ustar") }},
}

// probeForeign returns the refusal for a container this package does not
// read, or nil.
func probeForeign(head, tail []byte) error {
	for _, s := range foreign {
		if s.match(head, tail) {
			return &ContainerError{Name: s.name, Driver: s.driver, Hint: s.hint}
		}
	}
	return nil
}

// readHeadTail reads up to probeHead bytes from the start of r and the
// last 512 bytes (nil when the file is shorter).
func readHeadTail(r io.ReaderAt, size int64) (head, tail []byte, err error) {
	head = make([]byte, min(size, probeHead))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return nil, nil, err
	}
	if size >= 512 {
		tail = make([]byte, 512)
		if _, err := r.ReadAt(tail, size-512); err != nil && err != io.EOF {
			return nil, nil, err
		}
	}
	return head, tail, nil
}

// isVDI reports a VirtualBox image: the signature at 0x40 (what qemu
// probes), or the "<<< ... >>>" text VirtualBox and qemu write before it.
func isVDI(head []byte) bool {
	if len(head) >= 0x44 && le32(head[0x40:]) == vdiSignature {
		return true
	}
	if !at(head, 0, "<<< ") {
		return false
	}
	end := bytes.IndexByte(head[:min(len(head), 0x40)], '\n')
	return end > 0 && bytes.HasSuffix(head[:end], []byte(" >>>"))
}

// ErrUnrecognisedRaw refuses, unless the officer confirmed it
// (Options.ConfirmRaw), a raw source with neither a partition table nor a
// filesystem this package recognises: most often it is a container of an
// unknown format, not a disk. It wraps ErrInvalid.
var ErrUnrecognisedRaw = fmt.Errorf("%w: the source has no partition table and no filesystem Keyholder recognises", ErrInvalid)

// RawWarning explains why a raw image needs the officer's confirmation
// before it is prepared (empty when it does not): no MBR or GPT partition
// table and no filesystem or volume signature at its start.
func RawWarning(im Image) string {
	if im.Format() != Raw || recognisedDisk(im) {
		return ""
	}
	return "this raw file has no partition table (MBR or GPT) and no filesystem Keyholder recognises; " +
		"it may be a disk image in a format Keyholder does not know, whose bytes would be encrypted as they are. " +
		"Prepare it only if you know it is a raw disk (for example a blank data disk)"
}

// recognisedDisk: a GPT or MBR with a partition, or a filesystem at the
// start of the disk.
func recognisedDisk(im Image) bool {
	if _, err := ReadGPT(im, im.Size()); err == nil {
		return true
	}
	if len(readMBR(im, im.Size())) > 0 {
		return true
	}
	fs := DetectFilesystem(im)
	return fs != "" && fs != "unknown"
}

// checkRaw is Prepare's gate for raw sources that look wrong.
func checkRaw(im Image, confirmed bool) error {
	if confirmed {
		return nil
	}
	if RawWarning(im) != "" {
		return fmt.Errorf("prepare: %w; it may be a disk image in a format Keyholder does not know, "+
			"whose bytes would be encrypted as they are: prepare it only once you confirmed it is a raw disk", ErrUnrecognisedRaw)
	}
	return nil
}
