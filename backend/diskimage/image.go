// Package diskimage reads VM disk images (raw, qcow2, VMDK, VHD, VHDX, VDI), finds
// their partitions and filesystems, and prepares encrypted copies of them:
// a whole disk in one LUKS2 volume ("data" mode) or a bootable disk with
// only the root partition encrypted ("os" mode), written as raw, a GCP
// tar.gz (whole GiB), an Azure fixed VHD (whole MiB), raw for AWS (EC2
// import-snapshot) or a streamOptimized VMDK (VMware, EC2 VM Import), with
// a manifest.
//
// Prepare's order makes it crash-safe. For a data-mode raw, AWS, Azure or GCP output with a
// registrar that reserves (images.Registrar does): custody reserves a volume
// ID and release secret in memory only; the LUKS2 header with that secret's
// keyslot is written first into a temporary file beside the destination,
// then the payload, hashed in output order as it streams out (one pass);
// the file is synced; then one store transaction registers image and
// volume (custody wraps and stores the reserved secret) and the manifest is
// written; only after the commit are manifest and image renamed into place.
// The other modes and outputs encrypt the payload first and, inside the
// registration transaction, write the header, hash (a second pass) and
// sync. A killed run leaves at most a hidden ".NAME.keyholder-tmp-*"
// file, which nothing registered opens (the next run into that folder
// removes it once no live run holds its lock); a failed commit removes the
// temporaries.
//
// Formats are recognised by content, never by file name, and a file is
// taken as raw only when no container signature that qemu's block drivers
// probe matches (probe.go): containers this package does not read (QED,
// Parallels, QCOW v1, DMG, cloop, Bochs, ISO 9660, archives) are refused
// by name with the command that converts them (ContainerError), and a raw
// file with neither a partition table nor a recognised filesystem is
// prepared only with the officer's confirmation (RawWarning). Readers
// validate every offset they follow, keep only bounded parts of their
// tables in memory, never write the source, and refuse what they do not
// support (a qcow2 backing file, encryption, external data files; VHD,
// VHDX and VDI differencing disks; VMDK delta links and extents outside
// the descriptor's folder) with a clear error.
package diskimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Format names a disk image format.
type Format string

// Formats Open recognises.
const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
	VMDK  Format = "vmdk"
	VHD   Format = "vhd"
	VHDX  Format = "vhdx"
	VDI   Format = "vdi"
	LUKS  Format = "luks" // recognised only to refuse encrypting twice
)

// ErrUnsupported wraps image features this package refuses.
var ErrUnsupported = errors.New("unsupported image")

// ErrCorrupt wraps images whose structures are inconsistent.
var ErrCorrupt = errors.New("corrupt image")

// Image is a disk image opened for reading its virtual disk.
type Image interface {
	// ReadAt reads the virtual disk; regions never written read as zeros
	// without touching the file.
	io.ReaderAt
	// Size is the virtual disk size in bytes.
	Size() int64
	// Format is the container format.
	Format() Format
	// Detail is a short description of the variant (e.g. "qcow2 v3, zlib").
	Detail() string
}

// File is an Image that owns its file (and a VMDK descriptor's extents).
type File struct {
	Image
	f     *os.File
	extra []*os.File
}

// Close closes the underlying files.
func (f *File) Close() error {
	for _, x := range f.extra {
		x.Close()
	}
	return f.f.Close()
}

// OpenFile opens path and detects its format from its content. A VMDK
// descriptor's extent files are opened from path's folder.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open image %s: not a regular file", path)
	}
	var im Image
	var extra []*os.File
	var head [4096]byte
	if n, _ := f.ReadAt(head[:], 0); isVMDKDescriptor(head[:n]) {
		im, extra, err = openVMDKDescriptor(f, st.Size(), filepath.Dir(path))
	} else {
		im, err = Open(f, st.Size())
	}
	if err != nil {
		f.Close()
		var ce *ContainerError
		if errors.As(err, &ce) {
			ce.Path = path
		}
		return nil, fmt.Errorf("open image %s: %w", path, err)
	}
	return &File{Image: im, f: f, extra: extra}, nil
}

// Open detects the format of the image in r (size bytes long) and returns
// a reader of its virtual disk. Containers it does not read are refused
// with a *ContainerError; a VMDK descriptor, whose extents are other
// files, needs OpenFile.
func Open(r io.ReaderAt, size int64) (Image, error) {
	h, tail, err := readHeadTail(r, size)
	if err != nil {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(h, []byte("QFI\xfb")) && !at(h, 4, "\x00\x00\x00\x01"):
		return openQCOW2(r, size)
	case bytes.HasPrefix(h, []byte("KDMV")):
		return openVMDK(r, size)
	case isVMDKDescriptor(h[:min(len(h), 4096)]):
		return nil, fmt.Errorf("%w: a VMDK descriptor, whose extents are separate files; open it by its path", ErrUnsupported)
	case bytes.HasPrefix(h, []byte("vhdxfile")):
		return openVHDX(r, size)
	case isVDI(h):
		return openVDI(r, size)
	}
	if tail != nil {
		if bytes.HasPrefix(tail, []byte("conectix")) {
			return openVHD(r, size, tail, 512)
		}
		// Some tools end a VHD on a 511-byte footer (its last, reserved
		// byte missing).
		if bytes.HasPrefix(tail[1:], []byte("conectix")) {
			return openVHD(r, size, append(bytes.Clone(tail[1:]), 0), 511)
		}
		// A dynamic VHD with a damaged footer still has its copy at the start.
		if bytes.HasPrefix(h, []byte("conectix")) && len(h) >= 512 {
			return openVHD(r, size, h[:512], 0)
		}
	}
	if err := probeForeign(h, tail); err != nil {
		return nil, err
	}
	if bytes.HasPrefix(h, []byte("LUKS\xba\xbe")) {
		return nil, fmt.Errorf("%w: this is already a LUKS volume", ErrUnsupported)
	}
	if err := checkRawSize(size); err != nil {
		return nil, err
	}
	return &rawImage{r: r, size: size}, nil
}

// minRawSize is the smallest raw disk accepted: 1 MiB, where the first
// partition of a GPT disk starts by convention. Anything smaller (a text
// file, a truncated download) is not a disk image.
const minRawSize = 1 << 20

// ErrNotDiskImage means a file in no recognised container format is not a
// plausible raw disk either. It wraps ErrUnsupported.
var ErrNotDiskImage = fmt.Errorf("%w: not a disk image", ErrUnsupported)

// checkRawSize refuses raw "disks" that no hypervisor would attach: a size
// that is not a whole number of 512-byte sectors, or less than 1 MiB.
func checkRawSize(size int64) error {
	switch {
	case size%512 != 0:
		return fmt.Errorf("%w: size %d is not a multiple of 512 bytes", ErrNotDiskImage, size)
	case size < minRawSize:
		return fmt.Errorf("%w: size %d is smaller than 1 MiB", ErrNotDiskImage, size)
	}
	return nil
}

type rawImage struct {
	r    io.ReaderAt
	size int64
}

func (m *rawImage) ReadAt(p []byte, off int64) (int, error) {
	return readWithin(m.r, p, off, m.size)
}
func (m *rawImage) Size() int64    { return m.size }
func (m *rawImage) Format() Format { return Raw }
func (m *rawImage) Detail() string { return "raw" }

// readWithin reads p at off from r, clipped at size (io.EOF past it).
func readWithin(r io.ReaderAt, p []byte, off, size int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > size-off {
		p = p[:size-off]
	}
	n, err := r.ReadAt(p, off)
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

// sparseRead implements ReadAt over fixed-size blocks: fn fills one block's
// piece (dst) at offset inBlock of block idx.
func sparseRead(p []byte, off, size, block int64, fn func(dst []byte, idx, inBlock int64) error) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= size {
		return 0, io.EOF
	}
	n := 0
	end := off + int64(len(p))
	clipped := end > size
	if clipped {
		end = size
	}
	for off < end {
		idx, in := off/block, off%block
		l := min(block-in, end-off)
		if err := fn(p[n:n+int(l)], idx, in); err != nil {
			return n, err
		}
		n += int(l)
		off += l
	}
	if clipped {
		return n, io.EOF
	}
	return n, nil
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// maxVirtualSize bounds the disks we accept (64 TiB, as qemu's VHD limit
// is 2 TiB and VMDK sparse 2 TiB; qcow2 allows more, clouds do not).
const maxVirtualSize = 64 << 40
