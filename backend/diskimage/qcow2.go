package diskimage

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// qcow2 (https://gitlab.com/qemu-project/qemu/-/blob/master/docs/interop/qcow2.txt):
// a big-endian header, a one-level L1 table of L2 table offsets, L2 tables
// of cluster descriptors. We read v2 and v3, plain and zlib-compressed
// clusters and v3 zero clusters; we refuse backing files, encryption,
// external data files, extended L2 entries and non-zlib compression.
type qcow2Image struct {
	r           io.ReaderAt
	fileSize    int64
	size        int64
	clusterBits uint
	l1          []uint64
	version     uint32
	compressed  bool

	mu      sync.Mutex
	l2cache map[uint64][]uint64 // by L2 table offset, a few entries
	l2order []uint64
	zcache  struct {
		off  uint64
		data []byte
	}
}

const (
	qcowOffsetMask = 0x00fffffffffffe00
	qcowCompressed = 1 << 62
	qcowZero       = 1
	l2CacheTables  = 32
)

func openQCOW2(r io.ReaderAt, fileSize int64) (*qcow2Image, error) {
	h := make([]byte, 112)
	if n, _ := r.ReadAt(h, 0); n < 72 {
		return nil, fmt.Errorf("%w: qcow2 header truncated", ErrCorrupt)
	}
	q := &qcow2Image{r: r, fileSize: fileSize, l2cache: map[uint64][]uint64{}}
	q.version = be32(h[4:])
	if q.version != 2 && q.version != 3 {
		return nil, fmt.Errorf("%w: qcow2 version %d", ErrUnsupported, q.version)
	}
	if be64(h[8:]) != 0 || be32(h[16:]) != 0 {
		return nil, fmt.Errorf("%w: qcow2 image with a backing file; flatten it first (qemu-img convert -O qcow2 in out)", ErrUnsupported)
	}
	q.clusterBits = uint(be32(h[20:]))
	if q.clusterBits < 9 || q.clusterBits > 21 {
		return nil, fmt.Errorf("%w: qcow2 cluster_bits %d", ErrCorrupt, q.clusterBits)
	}
	q.size = int64(be64(h[24:]))
	if q.size < 0 || q.size > maxVirtualSize {
		return nil, fmt.Errorf("%w: qcow2 virtual size %d", ErrUnsupported, uint64(q.size))
	}
	if m := be32(h[32:]); m != 0 {
		return nil, fmt.Errorf("%w: encrypted qcow2 (method %d)", ErrUnsupported, m)
	}
	l1Size := uint64(be32(h[36:]))
	l1Off := be64(h[40:])
	hdrLen := uint32(72)
	if q.version == 3 {
		incompat := be64(h[72:])
		if incompat&^1 != 0 { // bit 0 "dirty" only affects refcounts
			return nil, fmt.Errorf("%w: qcow2 incompatible features %#x (corrupt, external data file, compression type or extended L2)", ErrUnsupported, incompat)
		}
		hdrLen = be32(h[100:])
		if hdrLen < 104 {
			return nil, fmt.Errorf("%w: qcow2 header length %d", ErrCorrupt, hdrLen)
		}
		if hdrLen > 104 && h[104] != 0 {
			return nil, fmt.Errorf("%w: qcow2 compression type %d (only zlib)", ErrUnsupported, h[104])
		}
	}
	cs := uint64(1) << q.clusterBits
	l2Entries := cs / 8
	need := (uint64(q.size) + cs*l2Entries - 1) / (cs * l2Entries)
	if l1Size < need || l1Size > 1<<25 {
		return nil, fmt.Errorf("%w: qcow2 L1 table of %d entries for %d needed", ErrCorrupt, l1Size, need)
	}
	if l1Off%cs != 0 || l1Off+l1Size*8 > uint64(fileSize) {
		return nil, fmt.Errorf("%w: qcow2 L1 table at %d outside the file", ErrCorrupt, l1Off)
	}
	raw := make([]byte, need*8)
	if _, err := r.ReadAt(raw, int64(l1Off)); err != nil {
		return nil, fmt.Errorf("read qcow2 L1 table: %w", err)
	}
	q.l1 = make([]uint64, need)
	for i := range q.l1 {
		e := be64(raw[i*8:])
		off := e & qcowOffsetMask
		if off%cs != 0 || off+cs > uint64(fileSize) {
			return nil, fmt.Errorf("%w: qcow2 L1 entry %d points to %d", ErrCorrupt, i, off)
		}
		q.l1[i] = off
	}
	return q, nil
}

func (q *qcow2Image) Size() int64    { return q.size }
func (q *qcow2Image) Format() Format { return QCOW2 }
func (q *qcow2Image) Detail() string {
	d := fmt.Sprintf("qcow2 v%d, %d KiB clusters", q.version, (1<<q.clusterBits)>>10)
	if q.compressed {
		d += ", zlib clusters"
	}
	return d
}

func (q *qcow2Image) ReadAt(p []byte, off int64) (int, error) {
	cs := int64(1) << q.clusterBits
	return sparseRead(p, off, q.size, cs, func(dst []byte, idx, in int64) error {
		l2Entries := cs / 8
		l1i, l2i := idx/l2Entries, idx%l2Entries
		l2off := q.l1[l1i]
		if l2off == 0 {
			clear(dst)
			return nil
		}
		l2, err := q.l2Table(l2off)
		if err != nil {
			return err
		}
		e := l2[l2i]
		if e&qcowCompressed != 0 {
			return q.readCompressed(dst, e, in, idx)
		}
		host := int64(e & qcowOffsetMask)
		if host == 0 || (q.version == 3 && e&qcowZero != 0) {
			clear(dst)
			return nil
		}
		if host%cs != 0 || host+cs > q.fileSize {
			return fmt.Errorf("%w: qcow2 cluster %d at %d outside the file", ErrCorrupt, idx, host)
		}
		_, err = q.r.ReadAt(dst, host+in)
		return err
	})
}

func (q *qcow2Image) l2Table(off uint64) ([]uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t, ok := q.l2cache[off]; ok {
		return t, nil
	}
	cs := 1 << q.clusterBits
	raw := make([]byte, cs)
	if _, err := q.r.ReadAt(raw, int64(off)); err != nil {
		return nil, fmt.Errorf("read qcow2 L2 table at %d: %w", off, err)
	}
	t := make([]uint64, cs/8)
	for i := range t {
		t[i] = be64(raw[i*8:])
	}
	if len(q.l2order) >= l2CacheTables {
		delete(q.l2cache, q.l2order[0])
		q.l2order = q.l2order[1:]
	}
	q.l2cache[off] = t
	q.l2order = append(q.l2order, off)
	return t, nil
}

func (q *qcow2Image) readCompressed(dst []byte, e uint64, in, idx int64) error {
	cb := q.clusterBits
	x := 62 - (cb - 8)
	host := e & (1<<x - 1)
	sectors := (e >> x) & (1<<(cb-8) - 1)
	clen := (sectors+1)*512 - host&511
	cs := int64(1) << cb
	if host+clen > uint64(q.fileSize)+512 || clen > uint64(2*cs) {
		return fmt.Errorf("%w: qcow2 compressed cluster %d at %d outside the file", ErrCorrupt, idx, host)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.compressed = true
	if q.zcache.data == nil || q.zcache.off != host {
		comp := make([]byte, min(clen, uint64(q.fileSize)-host))
		if _, err := q.r.ReadAt(comp, int64(host)); err != nil && err != io.EOF {
			return err
		}
		if q.zcache.data == nil {
			q.zcache.data = make([]byte, cs)
		}
		zr := flate.NewReader(bytes.NewReader(comp))
		_, err := io.ReadFull(zr, q.zcache.data)
		if err != nil {
			q.zcache.off = 0
			q.zcache.data = nil
			return fmt.Errorf("%w: qcow2 compressed cluster %d: %v", ErrCorrupt, idx, err)
		}
		q.zcache.off = host
	}
	copy(dst, q.zcache.data[in:])
	return nil
}
