package diskimage

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"regexp"
	"sync"
)

// VMDK sparse extents (VMware "Virtual Disk Format 1.1"): a little-endian
// header "KDMV", a grain directory of grain-table sector numbers, grain
// tables of grain sector numbers. monolithicSparse stores grains plainly;
// streamOptimized deflates each grain (zlib, behind a 12-byte marker) and
// keeps the real header in a footer before the end-of-stream marker.
type vmdkImage struct {
	r            io.ReaderAt
	fileSize     int64
	size         int64
	grain        int64 // bytes
	gtes         int64 // grain table entries per table
	gd           []uint32
	compressed   bool
	createType   string
	mu           sync.Mutex
	gtCache      map[uint32][]uint32
	gtOrder      []uint32
	lastGrainOff int64
	lastGrain    []byte
}

const (
	vmdkFlagCompressed = 1 << 16
	vmdkFlagMarkers    = 1 << 17
	vmdkGDAtEnd        = 0xffffffffffffffff
)

var createTypeRE = regexp.MustCompile(`(?m)^createType\s*=\s*"([^"]*)"`)
var parentCIDRE = regexp.MustCompile(`(?m)^parentCID\s*=\s*([0-9a-fA-F]+)`)

func openVMDK(r io.ReaderAt, fileSize int64) (*vmdkImage, error) {
	h := make([]byte, 512)
	if _, err := r.ReadAt(h, 0); err != nil {
		return nil, fmt.Errorf("%w: VMDK header truncated", ErrCorrupt)
	}
	if v := le32(h[4:]); v < 1 || v > 3 {
		return nil, fmt.Errorf("%w: VMDK version %d", ErrUnsupported, v)
	}
	flags := le32(h[8:])
	m := &vmdkImage{r: r, fileSize: fileSize, gtCache: map[uint32][]uint32{}, lastGrainOff: -1}
	descOff, descSize := le64(h[28:]), le64(h[36:])
	if descOff > 0 && descSize > 0 && descSize < 2048 && int64(descOff+descSize)*512 <= fileSize {
		d := make([]byte, descSize*512)
		if _, err := r.ReadAt(d, int64(descOff)*512); err == nil {
			d = bytes.TrimRight(d, "\x00")
			if mm := createTypeRE.FindSubmatch(d); mm != nil {
				m.createType = string(mm[1])
			}
			if mm := parentCIDRE.FindSubmatch(d); mm != nil && !bytes.EqualFold(mm[1], []byte("ffffffff")) {
				return nil, fmt.Errorf("%w: VMDK delta disk (parentCID %s); convert it to a standalone disk first", ErrUnsupported, mm[1])
			}
		}
	}
	if le64(h[56:]) == vmdkGDAtEnd {
		// streamOptimized: the footer (a header copy) sits 1024 bytes from the end.
		if fileSize < 1536 {
			return nil, fmt.Errorf("%w: VMDK footer missing", ErrCorrupt)
		}
		if _, err := r.ReadAt(h, fileSize-1024); err != nil {
			return nil, err
		}
		if !bytes.HasPrefix(h, []byte("KDMV")) {
			return nil, fmt.Errorf("%w: VMDK footer missing", ErrCorrupt)
		}
		flags = le32(h[8:])
	}
	capacity, grain := le64(h[12:]), le64(h[20:])
	m.gtes = int64(le32(h[44:]))
	gdOff := le64(h[56:])
	if grain < 1 || grain > 2048 || grain&(grain-1) != 0 {
		return nil, fmt.Errorf("%w: VMDK grain of %d sectors", ErrCorrupt, grain)
	}
	if capacity > maxVirtualSize/512 {
		return nil, fmt.Errorf("%w: VMDK capacity %d sectors", ErrUnsupported, capacity)
	}
	if m.gtes < 1 || m.gtes > 1<<16 {
		return nil, fmt.Errorf("%w: VMDK %d grain table entries", ErrCorrupt, m.gtes)
	}
	m.size = int64(capacity) * 512
	m.grain = int64(grain) * 512
	m.compressed = flags&vmdkFlagCompressed != 0
	if ca := le16(h[77:]); m.compressed && ca != 1 {
		return nil, fmt.Errorf("%w: VMDK compression algorithm %d", ErrUnsupported, ca)
	}
	grains := (m.size + m.grain - 1) / m.grain
	gdEntries := (grains + m.gtes - 1) / m.gtes
	if gdOff == vmdkGDAtEnd || int64(gdOff)*512+gdEntries*4 > fileSize {
		return nil, fmt.Errorf("%w: VMDK grain directory at sector %d outside the file", ErrCorrupt, gdOff)
	}
	raw := make([]byte, gdEntries*4)
	if _, err := r.ReadAt(raw, int64(gdOff)*512); err != nil {
		return nil, fmt.Errorf("read VMDK grain directory: %w", err)
	}
	m.gd = make([]uint32, gdEntries)
	for i := range m.gd {
		m.gd[i] = le32(raw[i*4:])
		if m.gd[i] != 0 && int64(m.gd[i])*512+m.gtes*4 > fileSize {
			return nil, fmt.Errorf("%w: VMDK grain table %d outside the file", ErrCorrupt, i)
		}
	}
	return m, nil
}

func (m *vmdkImage) Size() int64    { return m.size }
func (m *vmdkImage) Format() Format { return VMDK }
func (m *vmdkImage) Detail() string {
	if m.createType != "" {
		return "vmdk " + m.createType
	}
	if m.compressed {
		return "vmdk streamOptimized"
	}
	return "vmdk monolithicSparse"
}

func (m *vmdkImage) ReadAt(p []byte, off int64) (int, error) {
	return sparseRead(p, off, m.size, m.grain, func(dst []byte, idx, in int64) error {
		gdi, gti := idx/m.gtes, idx%m.gtes
		gtSector := m.gd[gdi]
		if gtSector == 0 {
			clear(dst)
			return nil
		}
		gt, err := m.table(gtSector)
		if err != nil {
			return err
		}
		g := int64(gt[gti])
		if g <= 1 { // 0: unallocated, 1: zeroed grain
			clear(dst)
			return nil
		}
		if !m.compressed {
			if g*512+m.grain > m.fileSize {
				return fmt.Errorf("%w: VMDK grain %d outside the file", ErrCorrupt, idx)
			}
			_, err := m.r.ReadAt(dst, g*512+in)
			return err
		}
		data, err := m.inflate(g*512, idx)
		if err != nil {
			return err
		}
		copy(dst, data[in:])
		return nil
	})
}

func (m *vmdkImage) table(sector uint32) ([]uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.gtCache[sector]; ok {
		return t, nil
	}
	raw := make([]byte, m.gtes*4)
	if _, err := m.r.ReadAt(raw, int64(sector)*512); err != nil {
		return nil, fmt.Errorf("read VMDK grain table: %w", err)
	}
	t := make([]uint32, m.gtes)
	for i := range t {
		t[i] = le32(raw[i*4:])
	}
	if len(m.gtOrder) >= 64 {
		delete(m.gtCache, m.gtOrder[0])
		m.gtOrder = m.gtOrder[1:]
	}
	m.gtCache[sector] = t
	m.gtOrder = append(m.gtOrder, sector)
	return t, nil
}

// inflate reads the compressed grain at off: lba u64, size u32, zlib data.
func (m *vmdkImage) inflate(off, idx int64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastGrainOff == off {
		return m.lastGrain, nil
	}
	var hdr [12]byte
	if _, err := m.r.ReadAt(hdr[:], off); err != nil {
		return nil, err
	}
	n := int64(le32(hdr[8:]))
	if n <= 0 || n > 2*m.grain+1024 || off+12+n > m.fileSize {
		return nil, fmt.Errorf("%w: VMDK compressed grain %d of %d bytes", ErrCorrupt, idx, n)
	}
	if lba := int64(le64(hdr[:])); lba != idx*m.grain/512 {
		return nil, fmt.Errorf("%w: VMDK grain %d claims sector %d", ErrCorrupt, idx, lba)
	}
	comp := make([]byte, n)
	if _, err := m.r.ReadAt(comp, off+12); err != nil {
		return nil, err
	}
	zr, err := zlib.NewReader(bytes.NewReader(comp))
	if err != nil {
		return nil, fmt.Errorf("%w: VMDK grain %d: %v", ErrCorrupt, idx, err)
	}
	if m.lastGrain == nil {
		m.lastGrain = make([]byte, m.grain)
	}
	k, err := io.ReadFull(zr, m.lastGrain)
	if err != nil && err != io.ErrUnexpectedEOF {
		m.lastGrainOff = -1
		return nil, fmt.Errorf("%w: VMDK grain %d: %v", ErrCorrupt, idx, err)
	}
	clear(m.lastGrain[k:]) // the last grain may be short
	m.lastGrainOff = off
	return m.lastGrain, nil
}
