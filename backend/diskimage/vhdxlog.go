package diskimage

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
)

// The VHDX log ([MS-VHDX] 2.3): a circular buffer of 4 KiB sectors holding
// entries ("loge" header, "desc"/"zero" descriptors, "data" sectors) that
// describe metadata writes (BAT, metadata region) made before they reached
// their place in the file. An image whose header names a log GUID may hold
// writes that were logged but not applied (a crash, a failed write); they
// must be replayed before the metadata is read. The source is never
// written: the active sequence (the valid run of entries with consecutive
// sequence numbers that ends highest, as qemu's vhdx-log.c finds it) is
// replayed into an in-memory overlay of the file, bounded by the log's
// size.

const vhdxLogSector = 4096

// maxVHDXLog bounds the log Keyholder replays in memory (Hyper-V and
// qemu-img make 1 MiB logs).
const maxVHDXLog = 16 << 20

// vhdxOverlay reads the file as it is once the log is replayed.
type vhdxOverlay struct {
	base     io.ReaderAt
	baseSize int64
	size     int64
	sectors  map[int64][]byte // by 4 KiB-aligned file offset
	zeros    []zeroRun        // zeroed ranges
	touched  []zeroRun        // sorted, merged: where sectors or zeros apply
}

// index sorts and merges the ranges the replay touched, so that reads
// elsewhere (all of the payload, as a rule) go to the file in one call.
func (o *vhdxOverlay) index() {
	var t []zeroRun
	for off := range o.sectors {
		t = append(t, zeroRun{off, vhdxLogSector})
	}
	t = append(t, o.zeros...)
	sort.Slice(t, func(i, j int) bool { return t[i].off < t[j].off })
	for _, r := range t {
		if n := len(o.touched); n > 0 && r.off <= o.touched[n-1].off+o.touched[n-1].n {
			last := &o.touched[n-1]
			last.n = max(last.n, r.off+r.n-last.off)
			continue
		}
		o.touched = append(o.touched, r)
	}
}

// untouched returns how many bytes from off (at most n) no replayed write
// touches.
func (o *vhdxOverlay) untouched(off, n int64) int64 {
	i := sort.Search(len(o.touched), func(i int) bool { return o.touched[i].off+o.touched[i].n > off })
	if i == len(o.touched) {
		return n
	}
	return max(0, min(n, o.touched[i].off-off))
}

type zeroRun struct{ off, n int64 }

func (o *vhdxOverlay) zeroed(off int64) bool {
	for _, z := range o.zeros {
		if off >= z.off && off < z.off+z.n {
			return true
		}
	}
	return false
}

func (o *vhdxOverlay) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset")
	}
	n := 0
	for n < len(p) {
		if off >= o.size {
			return n, io.EOF
		}
		rest := min(int64(len(p)-n), o.size-off)
		l := o.untouched(off, rest) // a run of the file as it is
		if l == 0 {
			l = min(rest, vhdxLogSector-off%vhdxLogSector) // one replayed sector
		}
		dst := p[n : n+int(l)]
		if s, ok := o.sectors[off&^(vhdxLogSector-1)]; ok && l <= vhdxLogSector {
			copy(dst, s[off%vhdxLogSector:])
		} else if o.zeroed(off) {
			clear(dst)
		} else if err := o.readBase(dst, off); err != nil {
			return n, err
		}
		n += int(l)
		off += l
	}
	return n, nil
}

// readBase reads the file, with zeros past its end (the replay grew it).
func (o *vhdxOverlay) readBase(dst []byte, off int64) error {
	want := int(max(0, min(int64(len(dst)), o.baseSize-off)))
	if want > 0 {
		if k, err := o.base.ReadAt(dst[:want], off); k < want {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	clear(dst[want:])
	return nil
}

// vhdxLogEntry is one validated log entry.
type vhdxLogEntry struct {
	seq                    uint64
	length                 int64
	flushedEnd, lastOffset int64
	raw                    []byte // the whole entry
	descs                  int
}

// replayVHDXLog returns the file with hdr's log replayed, or r itself when
// the log holds no active sequence.
func replayVHDXLog(r io.ReaderAt, fileSize int64, hdr []byte) (io.ReaderAt, int64, bool, error) {
	logGUID := hdr[48:64]
	logLen, logOff := int64(le32(hdr[68:])), int64(le64(hdr[72:]))
	if bytes.Equal(logGUID, make([]byte, 16)) || logLen == 0 {
		return r, fileSize, false, nil
	}
	switch {
	case le16(hdr[64:]) != 0:
		return nil, 0, false, fmt.Errorf("%w: VHDX log version %d", ErrUnsupported, le16(hdr[64:]))
	case logLen%(1<<20) != 0 || logOff%(1<<20) != 0 || logOff < 1<<20 || logOff+logLen > fileSize:
		return nil, 0, false, fmt.Errorf("%w: VHDX log at %d (%d bytes) outside the file", ErrCorrupt, logOff, logLen)
	case logLen > maxVHDXLog:
		return nil, 0, false, fmt.Errorf("%w: VHDX with a %d MiB log to replay (at most %d MiB are replayed); "+
			"attach it once in Hyper-V (or run qemu-img check -r all on a copy) so the log is applied, then try again", ErrUnsupported, logLen>>20, maxVHDXLog>>20)
	}
	log := make([]byte, logLen)
	if _, err := r.ReadAt(log, logOff); err != nil {
		return nil, 0, false, fmt.Errorf("read VHDX log: %w", err)
	}
	// circular reads an n-byte run of the log from pos, wrapping at its end.
	circular := func(pos, n int64) []byte {
		if pos+n <= logLen {
			return log[pos : pos+n]
		}
		return append(bytes.Clone(log[pos:]), log[:n-(logLen-pos)]...)
	}
	entryAt := func(pos int64, prev uint64) *vhdxLogEntry {
		h := log[pos : pos+vhdxLogSector]
		e := &vhdxLogEntry{length: int64(le32(h[8:])), seq: le64(h[16:]), descs: int(le32(h[24:])),
			flushedEnd: int64(le64(h[48:])), lastOffset: int64(le64(h[56:]))}
		descSectors := int64((e.descs + 2 + 127) / 128)
		switch {
		case string(h[:4]) != "loge", e.length <= 0, e.length%vhdxLogSector != 0, e.length > logLen,
			e.seq == 0, prev != 0 && e.seq != prev+1, !bytes.Equal(h[32:48], logGUID),
			descSectors*vhdxLogSector > e.length:
			return nil
		}
		e.raw = circular(pos, e.length)
		c := crc32.Update(0, castagnoli, e.raw[:4])
		c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
		if crc32.Update(c, castagnoli, e.raw[8:]) != le32(h[4:]) {
			return nil
		}
		data := descSectors
		for i := 0; i < e.descs; i++ {
			d := e.raw[64+32*i:][:32]
			if le64(d[24:]) != e.seq || le64(d[16:])%vhdxLogSector != 0 {
				return nil
			}
			switch string(d[:4]) {
			case "zero":
				if le64(d[8:])%vhdxLogSector != 0 {
					return nil
				}
			case "desc":
				if (data+1)*vhdxLogSector > e.length {
					return nil
				}
				s := e.raw[data*vhdxLogSector:][:vhdxLogSector]
				if string(s[:4]) != "data" || uint64(le32(s[4:]))<<32|uint64(le32(s[4092:])) != e.seq {
					return nil
				}
				data++
			default:
				return nil
			}
		}
		return e
	}
	// Find the active sequence: of the runs of valid entries with
	// consecutive sequence numbers, the one that ends highest.
	var best []*vhdxLogEntry
	for pos := int64(0); pos < logLen; {
		e := entryAt(pos, 0)
		if e == nil {
			pos += vhdxLogSector
			continue
		}
		run := []*vhdxLogEntry{e}
		next := (pos + e.length) % logLen
		walked := e.length
		for walked < logLen {
			n := entryAt(next, run[len(run)-1].seq)
			if n == nil {
				break
			}
			run = append(run, n)
			walked += n.length
			next = (next + n.length) % logLen
		}
		if best == nil || run[len(run)-1].seq > best[len(best)-1].seq {
			best = run
		}
		if pos+walked >= logLen {
			break // the run wrapped around: every start has been seen
		}
		pos += walked
	}
	if best == nil {
		return r, fileSize, false, nil
	}
	o := &vhdxOverlay{base: r, baseSize: fileSize, size: fileSize, sectors: map[int64][]byte{}}
	for _, e := range best {
		if e.flushedEnd > fileSize {
			return nil, 0, false, fmt.Errorf("%w: VHDX log expects a file of at least %d bytes (the file was truncated)", ErrCorrupt, e.flushedEnd)
		}
		data := int64((e.descs + 2 + 127) / 128)
		for i := 0; i < e.descs; i++ {
			d := e.raw[64+32*i:][:32]
			off := int64(le64(d[16:]))
			if off < 0 || off > maxVirtualSize*2 {
				return nil, 0, false, fmt.Errorf("%w: VHDX log writes at %d", ErrCorrupt, off)
			}
			if string(d[:4]) == "zero" {
				n := int64(le64(d[8:]))
				if n < 0 || n > maxVirtualSize*2 {
					return nil, 0, false, fmt.Errorf("%w: VHDX log zeroes %d bytes", ErrCorrupt, n)
				}
				for k := range o.sectors {
					if k >= off && k < off+n {
						delete(o.sectors, k)
					}
				}
				o.zeros = append(o.zeros, zeroRun{off, n})
				o.size = max(o.size, off+n)
				continue
			}
			s := make([]byte, vhdxLogSector)
			copy(s, d[8:16])
			copy(s[8:], e.raw[data*vhdxLogSector+8:][:4084])
			copy(s[4092:], d[4:8])
			o.sectors[off] = s
			o.size = max(o.size, off+vhdxLogSector)
			data++
		}
		if e.lastOffset > o.size {
			o.size = roundUp64(e.lastOffset, 1<<20)
		}
	}
	o.index()
	return o, o.size, true, nil
}
