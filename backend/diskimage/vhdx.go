package diskimage

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
)

// VHDX (Microsoft "[MS-VHDX]: Virtual Hard Disk v2 (VHDX) File Format"):
// little-endian; "vhdxfile" at 0, two 4 KiB headers at 64 and 128 KiB (the
// valid one with the higher sequence number is current), two copies of a
// region table at 192 and 256 KiB naming the BAT and metadata regions,
// each with a CRC-32C. The metadata region holds the block size, the
// virtual size and the logical sector size; the BAT has one 64-bit entry
// per payload block (state in bits 0-2, file offset in MiB in bits 20-63)
// with a sector bitmap entry after every chunk ratio of them. Fixed and
// dynamic disks are read, a log of writes not yet applied replayed first
// (in memory, see vhdxlog.go); differencing disks are refused.
type vhdxImage struct {
	r          io.ReaderAt
	fileSize   int64
	size       int64
	blockSize  int64
	sectorSize int64
	chunkRatio int64
	fixed      bool
	replayed   bool // a log was replayed (in memory)
	bat        *pagedTable
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// guid returns the on-disk (mixed-endian) bytes of a GUID in its text form.
func guid(s string) [16]byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("bad GUID " + s)
	}
	var g [16]byte
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(b[6:]))
	copy(g[8:], b[8:])
	return g
}

var (
	vhdxBATRegion      = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
	vhdxMetadataRegion = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	vhdxFileParameters = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxVirtualSize    = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxLogicalSector  = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	vhdxPhysicalSector = guid("CDA348C7-445D-4471-9CC9-E9885251C556")
	vhdxDiskID         = guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
	vhdxParentLocator  = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
)

const (
	vhdxBlockNotPresent = 0
	vhdxBlockUndefined  = 1
	vhdxBlockZero       = 2
	vhdxBlockUnmapped   = 3
	vhdxBlockFull       = 6
	vhdxBlockPartial    = 7
)

// crcOK checks a structure's CRC-32C, computed with its checksum field
// (at off) taken as zero.
func crcOK(b []byte, off int) bool {
	want := le32(b[off:])
	c := crc32.Update(0, castagnoli, b[:off])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	c = crc32.Update(c, castagnoli, b[off+4:])
	return c == want
}

func openVHDX(r io.ReaderAt, fileSize int64) (*vhdxImage, error) {
	if fileSize < 320<<10 {
		return nil, fmt.Errorf("%w: VHDX of %d bytes has no room for its headers", ErrCorrupt, fileSize)
	}
	// The current header: the valid one with the higher sequence number.
	var hdr []byte
	var seq uint64
	for _, off := range []int64{64 << 10, 128 << 10} {
		b := make([]byte, 4096)
		if _, err := r.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("read VHDX header: %w", err)
		}
		if string(b[:4]) != "head" || !crcOK(b, 4) {
			continue
		}
		if s := le64(b[8:]); hdr == nil || s > seq {
			hdr, seq = b, s
		}
	}
	if hdr == nil {
		return nil, fmt.Errorf("%w: VHDX without a valid header", ErrCorrupt)
	}
	if v := le16(hdr[66:]); v != 1 {
		return nil, fmt.Errorf("%w: VHDX version %d", ErrUnsupported, v)
	}
	// A log not yet replayed holds metadata writes that the BAT and the
	// metadata region do not show yet: replay it (in memory) first.
	r, fileSize, replayed, err := replayVHDXLog(r, fileSize, hdr)
	if err != nil {
		return nil, err
	}
	// Region table: the first copy, or the second if the first is damaged.
	var regions []byte
	for _, off := range []int64{192 << 10, 256 << 10} {
		b := make([]byte, 64<<10)
		if _, err := r.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("read VHDX region table: %w", err)
		}
		if string(b[:4]) == "regi" && crcOK(b, 4) {
			regions = b
			break
		}
	}
	if regions == nil {
		return nil, fmt.Errorf("%w: VHDX without a valid region table", ErrCorrupt)
	}
	n := int(le32(regions[8:]))
	if n > 2047 {
		return nil, fmt.Errorf("%w: VHDX region table of %d entries", ErrCorrupt, n)
	}
	var batOff, batLen, metaOff, metaLen int64
	for i := 0; i < n; i++ {
		e := regions[16+32*i:][:32]
		off, length, required := int64(le64(e[16:])), int64(le32(e[24:])), le32(e[28:])&1 != 0
		if off < 0 || off%(1<<20) != 0 || length%(1<<20) != 0 || off < 1<<20 || off+length > fileSize {
			return nil, fmt.Errorf("%w: VHDX region at %d (%d bytes) outside the file", ErrCorrupt, off, length)
		}
		switch [16]byte(e[:16]) {
		case vhdxBATRegion:
			batOff, batLen = off, length
		case vhdxMetadataRegion:
			metaOff, metaLen = off, length
		default:
			if required {
				return nil, fmt.Errorf("%w: VHDX with an unknown required region", ErrUnsupported)
			}
		}
	}
	if batLen == 0 || metaLen == 0 {
		return nil, fmt.Errorf("%w: VHDX without its BAT or metadata region", ErrCorrupt)
	}
	v := &vhdxImage{r: r, fileSize: fileSize, replayed: replayed}
	if err := v.readMetadata(metaOff, metaLen); err != nil {
		return nil, err
	}
	payload := (v.size + v.blockSize - 1) / v.blockSize
	entries := payload
	if payload > 0 {
		entries += (payload - 1) / v.chunkRatio
	}
	if entries*8 > batLen {
		return nil, fmt.Errorf("%w: VHDX BAT of %d bytes for %d entries", ErrCorrupt, batLen, entries)
	}
	v.bat = newPagedTable(r, batOff, entries, 8, false)
	return v, nil
}

// readMetadata reads the metadata table and the items the payload needs.
func (v *vhdxImage) readMetadata(off, length int64) error {
	t := make([]byte, 64<<10)
	if _, err := v.r.ReadAt(t, off); err != nil {
		return fmt.Errorf("read VHDX metadata table: %w", err)
	}
	if string(t[:8]) != "metadata" {
		return fmt.Errorf("%w: VHDX metadata table missing", ErrCorrupt)
	}
	n := int(le16(t[10:]))
	if n > 2047 {
		return fmt.Errorf("%w: VHDX metadata table of %d entries", ErrCorrupt, n)
	}
	item := func(e []byte, want int) ([]byte, error) {
		o, l := int64(le32(e[16:])), int64(le32(e[20:]))
		if l != int64(want) || o < 64<<10 || o+l > length {
			return nil, fmt.Errorf("%w: VHDX metadata item at %d (%d bytes)", ErrCorrupt, o, l)
		}
		b := make([]byte, l)
		if _, err := v.r.ReadAt(b, off+o); err != nil {
			return nil, fmt.Errorf("read VHDX metadata: %w", err)
		}
		return b, nil
	}
	var haveParams, haveSize, haveSector bool
	for i := 0; i < n; i++ {
		e := t[32+32*i:][:32]
		required := le32(e[24:])&4 != 0
		switch id := [16]byte(e[:16]); id {
		case vhdxFileParameters:
			b, err := item(e, 8)
			if err != nil {
				return err
			}
			v.blockSize = int64(le32(b))
			flags := le32(b[4:])
			if flags&2 != 0 {
				return fmt.Errorf("%w: differencing VHDX (it has a parent); merge it into its parent first", ErrUnsupported)
			}
			v.fixed = flags&1 != 0
			haveParams = true
		case vhdxVirtualSize:
			b, err := item(e, 8)
			if err != nil {
				return err
			}
			v.size = int64(le64(b))
			haveSize = true
		case vhdxLogicalSector:
			b, err := item(e, 4)
			if err != nil {
				return err
			}
			v.sectorSize = int64(le32(b))
			haveSector = true
		case vhdxParentLocator:
			return fmt.Errorf("%w: differencing VHDX (it has a parent locator); merge it into its parent first", ErrUnsupported)
		case vhdxPhysicalSector, vhdxDiskID:
		default:
			if required {
				return fmt.Errorf("%w: VHDX with an unknown required metadata item", ErrUnsupported)
			}
		}
	}
	switch {
	case !haveParams || !haveSize || !haveSector:
		return fmt.Errorf("%w: VHDX metadata incomplete", ErrCorrupt)
	case v.blockSize < 1<<20 || v.blockSize > 256<<20 || v.blockSize&(v.blockSize-1) != 0:
		return fmt.Errorf("%w: VHDX block size %d", ErrCorrupt, v.blockSize)
	case v.sectorSize != 512 && v.sectorSize != 4096:
		return fmt.Errorf("%w: VHDX logical sector size %d", ErrCorrupt, v.sectorSize)
	case v.size < 0 || v.size > maxVirtualSize:
		return fmt.Errorf("%w: VHDX virtual size %d", ErrUnsupported, uint64(v.size))
	case v.size%v.sectorSize != 0:
		return fmt.Errorf("%w: VHDX virtual size %d is not a whole number of %d-byte sectors", ErrCorrupt, v.size, v.sectorSize)
	}
	v.chunkRatio = (1 << 23) * v.sectorSize / v.blockSize
	return nil
}

func (v *vhdxImage) Size() int64    { return v.size }
func (v *vhdxImage) Format() Format { return VHDX }
func (v *vhdxImage) Detail() string {
	kind := "dynamic"
	if v.fixed {
		kind = "fixed"
	}
	d := fmt.Sprintf("vhdx %s, %d MiB blocks, %d-byte sectors", kind, v.blockSize>>20, v.sectorSize)
	if v.replayed {
		d += ", log replayed"
	}
	return d
}

func (v *vhdxImage) ReadAt(p []byte, off int64) (int, error) {
	return sparseRead(p, off, v.size, v.blockSize, func(dst []byte, idx, in int64) error {
		e, err := v.bat.entry(idx + idx/v.chunkRatio)
		if err != nil {
			return err
		}
		switch e & 7 {
		case vhdxBlockNotPresent, vhdxBlockUndefined, vhdxBlockZero, vhdxBlockUnmapped:
			clear(dst)
			return nil
		case vhdxBlockFull:
		case vhdxBlockPartial:
			return fmt.Errorf("%w: VHDX block %d is partially present in a disk without a parent", ErrCorrupt, idx)
		default:
			return fmt.Errorf("%w: VHDX block %d in state %d", ErrCorrupt, idx, e&7)
		}
		host := int64(e>>20) << 20
		if host < 1<<20 || host+in+int64(len(dst)) > v.fileSize {
			return fmt.Errorf("%w: VHDX block %d at %d outside the file", ErrCorrupt, idx, host)
		}
		_, err = v.r.ReadAt(dst, host+in)
		return err
	})
}
