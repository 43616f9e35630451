package diskimage

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"time"
)

// gzFrame lays a disk out as the tar.gz that Compute Engine imports (one
// file, disk.raw, in a gzip stream of stored deflate blocks), so that the
// pipeline can write each encrypted chunk straight to its place in the
// package: a fixed prefix (the gzip header and one stored block with the
// tar header), then the disk in stored blocks of gzBlock bytes each behind
// a 5-byte block header, then a final stored block with tar's two
// end-of-archive blocks, then gzip's CRC-32 and size. Encrypted data does
// not compress, so storing it costs nothing in size.
//
// Every chunk of the disk starts at a block boundary and its framed bytes
// are contiguous in the file. The prefix is padded (with a gzip extra
// field) to a multiple of 64 bytes, and a chunk's framing adds 5 bytes per
// 16 KiB block (320 per 1 MiB chunk, also a multiple of 64): so the output's
// SHA-256 stays at a block boundary at the start of every chunk and is
// hashed beside the source's with the two-stream kernel.
type gzFrame struct {
	disk   int64  // the disk's size
	prefix []byte // gzip header and the stored block with the tar header
	crc    uint32 // CRC-32 of the tar stream so far
}

// gzBlock is the data of one stored block; it divides chunk and
// luksHeaderSize, and chunk/gzBlock*gzBlockHeader is a multiple of 64
// (checked below, at compile time).
const gzBlock = 16 << 10

var (
	_ [0]struct{} = [chunk % gzBlock]struct{}{}
	_ [0]struct{} = [luksHeaderSize % gzBlock]struct{}{}
	_ [0]struct{} = [chunk / gzBlock * gzBlockHeader % 64]struct{}{}
	_ [0]struct{} = [gzPrefix % 64]struct{}{}
)

// gzBlockHeader is the size of a stored block's header: the byte with
// BFINAL and BTYPE (at a byte boundary, padded), LEN and NLEN.
const gzBlockHeader = 5

// gzPrefix is the prefix's size, a multiple of 64.
const gzPrefix = 576

func newGZFrame(disk int64, now time.Time) *gzFrame {
	var th bytes.Buffer
	tw := tar.NewWriter(&th)
	// A header only (no Close: the end-of-archive blocks come after the disk).
	_ = tw.WriteHeader(&tar.Header{Name: "disk.raw", Mode: 0o644, Size: disk, Format: tar.FormatGNU, ModTime: now})
	_ = tw.Flush()
	tarHeader := th.Bytes()[:512]
	p := make([]byte, 0, gzPrefix)
	// gzip header: magic, deflate, FEXTRA, mtime 0, no extra flags, OS
	// unknown; the extra field pads the prefix to gzPrefix bytes.
	xlen := gzPrefix - 12 - gzBlockHeader - 512
	p = append(p, 0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255)
	p = binary.LittleEndian.AppendUint16(p, uint16(xlen))
	p = append(p, 'K', 'H')
	p = binary.LittleEndian.AppendUint16(p, uint16(xlen-4))
	p = append(p, make([]byte, xlen-4)...)
	p = appendStoredHeader(p, 512, false)
	p = append(p, tarHeader...)
	return &gzFrame{disk: disk, prefix: p, crc: crc32.ChecksumIEEE(tarHeader)}
}

func appendStoredHeader(p []byte, n int, final bool) []byte {
	b := byte(0)
	if final {
		b = 1
	}
	p = append(p, b)
	p = binary.LittleEndian.AppendUint16(p, uint16(n))
	return binary.LittleEndian.AppendUint16(p, ^uint16(n))
}

// at is where the stored block holding disk offset d (a multiple of
// gzBlock) starts in the file.
func (g *gzFrame) at(d int64) int64 { return gzPrefix + d/gzBlock*(gzBlock+gzBlockHeader) }

// framedLen is the framed size of n disk bytes starting at a block boundary.
func framedLen(n int) int { return n + (n+gzBlock-1)/gzBlock*gzBlockHeader }

// frame writes the n = len(src) disk bytes of src, which start at a block
// boundary, framed into dst (framedLen(n) bytes), through fill (a copy or
// the encryption of one block's bytes) and returns the CRC-32 of what fill
// wrote.
func frame(dst, src []byte, fill func(dst, src []byte, off int)) uint32 {
	var crc uint32
	o := 0
	for i := 0; i < len(src); i += gzBlock {
		n := min(gzBlock, len(src)-i)
		appendStoredHeader(dst[o:o], n, false)
		o += gzBlockHeader
		fill(dst[o:o+n], src[i:i+n], i)
		crc = crc32.Update(crc, crc32.IEEETable, dst[o:o+n])
		o += n
	}
	return crc
}

// add appends n bytes of the tar stream with CRC-32 crc.
func (g *gzFrame) add(crc uint32, n int64) { g.crc = crc32Combine(g.crc, crc, n) }

// tail is what follows the disk: a final stored block with tar's two zero
// blocks, then gzip's trailer.
func (g *gzFrame) tail() []byte {
	end := make([]byte, 1024)
	g.add(crc32.ChecksumIEEE(end), int64(len(end)))
	t := appendStoredHeader(nil, len(end), true)
	t = append(t, end...)
	t = binary.LittleEndian.AppendUint32(t, g.crc)
	return binary.LittleEndian.AppendUint32(t, uint32(512+g.disk+1024))
}

// size is the whole file's size.
func (g *gzFrame) size() int64 {
	return g.at(g.disk/gzBlock*gzBlock) + int64(framedLen(int(g.disk%gzBlock))) + gzBlockHeader + 1024 + 8
}

// crc32Combine returns the CRC-32 (IEEE) of A followed by B from crc1 of A,
// crc2 of B and B's length (zlib's crc32_combine: crc1 multiplied by x^(8
// len2) modulo the polynomial, in GF(2)).
func crc32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1
	}
	return multModP(x8nModP(len2), crc1) ^ crc2
}

// multModP multiplies a and b modulo the reflected CRC-32 polynomial.
func multModP(a, b uint32) uint32 {
	const poly = 0xedb88320
	m := uint32(1) << 31
	var p uint32
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
	return p
}

// x8nModP is x^(8n) modulo the polynomial.
func x8nModP(n int64) uint32 {
	p := uint32(1) << 31 // x^0
	k := 3
	for n != 0 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
		n >>= 1
		k++
	}
	return p
}

// x2nTable[k] is x^(2^k) modulo the polynomial.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for i := 1; i < 32; i++ {
		p = multModP(p, p)
		t[i] = p
	}
	return t
}()
