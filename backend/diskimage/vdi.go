package diskimage

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// VDI (VirtualBox; the layout qemu's block/vdi.c reads): a 512-byte
// little-endian header (a "<<< ... >>>" text, the signature 0xbeda107f at
// 0x40, version 1.1), a block map of 32-bit entries (one per block of the
// virtual disk: the block's index in the data area, or 0xffffffff
// unallocated, or 0xfffffffe discarded; both read as zeros), then the data
// blocks. Static ("fixed") images have every block allocated. Differencing
// and undo images (a parent or link UUID) are refused.
type vdiImage struct {
	r         io.ReaderAt
	fileSize  int64
	size      int64
	blockSize int64
	dataOff   int64
	blocks    int64 // blocks in the image (block map entries)
	static    bool
	bmap      *pagedTable
}

const (
	vdiSignature   = 0xbeda107f
	vdiVersion11   = 0x00010001
	vdiUnallocated = 0xffffffff
	vdiDiscarded   = 0xfffffffe
)

func openVDI(r io.ReaderAt, fileSize int64) (*vdiImage, error) {
	h := make([]byte, 512)
	if n, _ := r.ReadAt(h, 0); n < 512 {
		return nil, fmt.Errorf("%w: VDI header truncated", ErrCorrupt)
	}
	if le32(h[0x40:]) != vdiSignature {
		return nil, fmt.Errorf("%w: VDI header without its signature", ErrCorrupt)
	}
	if v := le32(h[0x44:]); v != vdiVersion11 {
		return nil, fmt.Errorf("%w: VDI version %d.%d (only 1.1)", ErrUnsupported, v>>16, v&0xffff)
	}
	v := &vdiImage{r: r, fileSize: fileSize}
	typ := le32(h[0x4c:])
	switch typ {
	case 1:
	case 2:
		v.static = true
	case 3, 4:
		return nil, fmt.Errorf("%w: VDI %s image; merge it into its parent in VirtualBox first", ErrUnsupported, map[uint32]string{3: "undo", 4: "differencing"}[typ])
	default:
		return nil, fmt.Errorf("%w: VDI image type %d", ErrUnsupported, typ)
	}
	if !bytes.Equal(h[0x1a8:0x1c8], make([]byte, 32)) {
		return nil, fmt.Errorf("%w: VDI image with a parent (differencing); merge it first", ErrUnsupported)
	}
	bmapOff := int64(le32(h[0x154:]))
	v.dataOff = int64(le32(h[0x158:]))
	if ss := le32(h[0x168:]); ss != 512 {
		return nil, fmt.Errorf("%w: VDI sector size %d", ErrUnsupported, ss)
	}
	v.size = int64(le64(h[0x170:]))
	v.blockSize = int64(le32(h[0x178:]))
	extra := le32(h[0x17c:])
	v.blocks = int64(le32(h[0x180:]))
	switch {
	case v.size < 0 || v.size > maxVirtualSize:
		return nil, fmt.Errorf("%w: VDI disk size %d", ErrUnsupported, uint64(v.size))
	case v.blockSize < 512 || v.blockSize > 256<<20 || v.blockSize&(v.blockSize-1) != 0:
		return nil, fmt.Errorf("%w: VDI block size %d", ErrCorrupt, v.blockSize)
	case extra != 0:
		return nil, fmt.Errorf("%w: VDI blocks with %d extra bytes", ErrUnsupported, extra)
	case bmapOff%512 != 0 || v.dataOff%512 != 0 || bmapOff < 512 || v.dataOff < bmapOff+v.blocks*4:
		return nil, fmt.Errorf("%w: VDI block map at %d, data at %d", ErrCorrupt, bmapOff, v.dataOff)
	case v.size > v.blocks*v.blockSize:
		return nil, fmt.Errorf("%w: VDI disk of %d bytes in %d blocks of %d", ErrCorrupt, v.size, v.blocks, v.blockSize)
	case bmapOff+v.blocks*4 > fileSize:
		return nil, fmt.Errorf("%w: VDI block map outside the file", ErrCorrupt)
	}
	// VirtualBox rounds odd sizes up to a whole sector, as qemu does.
	v.size = roundUp64(v.size, 512)
	v.bmap = newPagedTable(r, bmapOff, v.blocks, 4, false)
	return v, nil
}

func (v *vdiImage) Size() int64    { return v.size }
func (v *vdiImage) Format() Format { return VDI }
func (v *vdiImage) Detail() string {
	kind := "dynamic"
	if v.static {
		kind = "static"
	}
	return fmt.Sprintf("vdi %s, %d KiB blocks", kind, v.blockSize>>10)
}

func (v *vdiImage) ReadAt(p []byte, off int64) (int, error) {
	return sparseRead(p, off, v.size, v.blockSize, func(dst []byte, idx, in int64) error {
		e, err := v.bmap.entry(idx)
		if err != nil {
			return err
		}
		if e >= vdiDiscarded {
			clear(dst)
			return nil
		}
		host := v.dataOff + int64(e)*v.blockSize
		if int64(e) >= v.blocks || host+in+int64(len(dst)) > v.fileSize {
			return fmt.Errorf("%w: VDI block %d at %d outside the file", ErrCorrupt, idx, host)
		}
		_, err = v.r.ReadAt(dst, host+in)
		return err
	})
}

// pagedTable reads a table of fixed-width entries (a block map, a BAT)
// from the file in 64 KiB pages as they are needed and keeps a few, so that
// a huge disk's table does not have to fit in memory.
type pagedTable struct {
	r         io.ReaderAt
	off, n    int64
	width     int
	bigEndian bool

	mu    sync.Mutex
	pages map[int64][]byte
	order []int64
}

const (
	tablePage  = 64 << 10
	tablePages = 16
)

func newPagedTable(r io.ReaderAt, off, n int64, width int, bigEndian bool) *pagedTable {
	return &pagedTable{r: r, off: off, n: n, width: width, bigEndian: bigEndian, pages: map[int64][]byte{}}
}

// entry returns entry i (0 <= i < n).
func (t *pagedTable) entry(i int64) (uint64, error) {
	if i < 0 || i >= t.n {
		return 0, fmt.Errorf("%w: table entry %d of %d", ErrCorrupt, i, t.n)
	}
	byteOff := i * int64(t.width)
	pg := byteOff / tablePage
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.pages[pg]
	if !ok {
		size := min(tablePage, t.n*int64(t.width)-pg*tablePage)
		b = make([]byte, size)
		if n, err := t.r.ReadAt(b, t.off+pg*tablePage); n < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("read block table at %d: %w", t.off+pg*tablePage, err)
		}
		if len(t.order) >= tablePages {
			delete(t.pages, t.order[0])
			t.order = t.order[1:]
		}
		t.pages[pg] = b
		t.order = append(t.order, pg)
	}
	e := b[byteOff-pg*tablePage:]
	switch {
	case t.width == 8 && t.bigEndian:
		return be64(e), nil
	case t.width == 8:
		return le64(e), nil
	case t.bigEndian:
		return uint64(be32(e)), nil
	}
	return uint64(le32(e)), nil
}
