package diskimage

import (
	"fmt"
	"io"
)

// VHD (Microsoft "Virtual Hard Disk Image Format Specification"): a
// big-endian 512-byte footer "conectix" at the end; fixed disks are the raw
// data followed by the footer, dynamic disks have a "cxsparse" header and a
// block allocation table (BAT) of sector offsets, each block a sector bitmap
// followed by its data. Differencing disks are refused.
type vhdImage struct {
	r         io.ReaderAt
	fileSize  int64
	size      int64
	dynamic   bool
	blockSize int64
	bitmap    int64 // bytes of sector bitmap before each block's data
	bat       []uint32
}

// openVHD reads the VHD whose footer is foot; footLen is how many bytes the
// footer takes at the end of the file (512, 511 for some tools' fixed
// disks, 0 when foot is a dynamic disk's copy at the start).
func openVHD(r io.ReaderAt, fileSize int64, foot []byte, footLen int64) (*vhdImage, error) {
	var sum uint32
	for i, b := range foot[:512] {
		if i < 64 || i >= 68 {
			sum += uint32(b)
		}
	}
	if ^sum != be32(foot[64:]) {
		return nil, fmt.Errorf("%w: VHD footer checksum", ErrCorrupt)
	}
	v := &vhdImage{r: r, fileSize: fileSize, size: int64(be64(foot[48:]))}
	if v.size < 0 || v.size > maxVirtualSize {
		return nil, fmt.Errorf("%w: VHD size %d", ErrUnsupported, v.size)
	}
	switch t := be32(foot[60:]); t {
	case 2:
		if footLen == 0 {
			return nil, fmt.Errorf("%w: fixed VHD without its footer", ErrCorrupt)
		}
		if v.size > fileSize-footLen {
			return nil, fmt.Errorf("%w: fixed VHD of %d bytes in a %d-byte file", ErrCorrupt, v.size, fileSize)
		}
		return v, nil
	case 3:
		v.dynamic = true
	case 4:
		return nil, fmt.Errorf("%w: differencing VHD; merge it into its parent first", ErrUnsupported)
	default:
		return nil, fmt.Errorf("%w: VHD disk type %d", ErrUnsupported, t)
	}
	dynOff := int64(be64(foot[16:]))
	h := make([]byte, 1024)
	if dynOff < 0 || dynOff+1024 > fileSize {
		return nil, fmt.Errorf("%w: VHD dynamic header at %d outside the file", ErrCorrupt, dynOff)
	}
	if _, err := r.ReadAt(h, dynOff); err != nil {
		return nil, err
	}
	if string(h[:8]) != "cxsparse" {
		return nil, fmt.Errorf("%w: VHD dynamic header missing", ErrCorrupt)
	}
	batOff := int64(be64(h[16:]))
	entries := int64(be32(h[28:]))
	v.blockSize = int64(be32(h[32:]))
	if v.blockSize < 512 || v.blockSize > 256<<20 || v.blockSize&(v.blockSize-1) != 0 {
		return nil, fmt.Errorf("%w: VHD block size %d", ErrCorrupt, v.blockSize)
	}
	need := (v.size + v.blockSize - 1) / v.blockSize
	if entries < need || entries > 1<<28 || batOff < 0 || batOff+need*4 > fileSize {
		return nil, fmt.Errorf("%w: VHD block table of %d entries at %d", ErrCorrupt, entries, batOff)
	}
	v.bitmap = (v.blockSize/512/8 + 511) / 512 * 512
	raw := make([]byte, need*4)
	if _, err := r.ReadAt(raw, batOff); err != nil {
		return nil, fmt.Errorf("read VHD block table: %w", err)
	}
	v.bat = make([]uint32, need)
	for i := range v.bat {
		v.bat[i] = be32(raw[i*4:])
		if v.bat[i] != 0xffffffff && int64(v.bat[i])*512+v.bitmap+v.blockSize > fileSize {
			return nil, fmt.Errorf("%w: VHD block %d outside the file", ErrCorrupt, i)
		}
	}
	return v, nil
}

func (v *vhdImage) Size() int64    { return v.size }
func (v *vhdImage) Format() Format { return VHD }
func (v *vhdImage) Detail() string {
	if v.dynamic {
		return fmt.Sprintf("vhd dynamic, %d KiB blocks", v.blockSize>>10)
	}
	return "vhd fixed"
}

func (v *vhdImage) ReadAt(p []byte, off int64) (int, error) {
	if !v.dynamic {
		return readWithin(v.r, p, off, v.size)
	}
	return sparseRead(p, off, v.size, v.blockSize, func(dst []byte, idx, in int64) error {
		s := v.bat[idx]
		if s == 0xffffffff {
			clear(dst)
			return nil
		}
		_, err := v.r.ReadAt(dst, int64(s)*512+v.bitmap+in)
		return err
	})
}
