package diskimage

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
)

// writeVMDKStream writes the disk in raw (size bytes, a multiple of 512) as
// a streamOptimized VMDK, as VMware and EC2 VM Import take it: header, descriptor,
// then each 64 KiB grain deflated behind its marker (level 0: encrypted
// data does not compress), a grain table after every 512 grains, the grain
// directory, the footer and the end-of-stream marker.
func writeVMDKStream(ctx context.Context, w io.Writer, raw io.ReaderAt, size int64) error {
	const (
		grainSectors = 128
		gtes         = 512
		overhead     = 128 // sectors before the first grain
	)
	if size%512 != 0 {
		return fmt.Errorf("vmdk: disk of %d bytes is not whole sectors", size)
	}
	capacity := uint64(size / 512)
	grains := (capacity + grainSectors - 1) / grainSectors
	gdEntries := (grains + gtes - 1) / gtes
	bw := bufio.NewWriterSize(w, 1<<20)
	var pos uint64 // bytes written
	write := func(b []byte) error {
		n, err := bw.Write(b)
		pos += uint64(n)
		return err
	}
	pad := func() error {
		if r := pos % 512; r != 0 {
			return write(make([]byte, 512-r))
		}
		return nil
	}
	header := func(gdOffset uint64) []byte {
		h := make([]byte, 512)
		copy(h, "KDMV")
		binary.LittleEndian.PutUint32(h[4:], 3)
		binary.LittleEndian.PutUint32(h[8:], 1|vmdkFlagCompressed|vmdkFlagMarkers)
		binary.LittleEndian.PutUint64(h[12:], capacity)
		binary.LittleEndian.PutUint64(h[20:], grainSectors)
		binary.LittleEndian.PutUint64(h[28:], 1) // descriptor at sector 1
		binary.LittleEndian.PutUint64(h[36:], 1)
		binary.LittleEndian.PutUint32(h[44:], gtes)
		binary.LittleEndian.PutUint64(h[56:], gdOffset)
		binary.LittleEndian.PutUint64(h[64:], overhead)
		h[73], h[74], h[75], h[76] = '\n', ' ', '\r', '\n'
		binary.LittleEndian.PutUint16(h[77:], 1) // deflate
		return h
	}
	marker := func(val uint64, typ uint32) []byte {
		m := make([]byte, 512)
		binary.LittleEndian.PutUint64(m, val)
		binary.LittleEndian.PutUint32(m[12:], typ)
		return m
	}
	var cid [4]byte
	rand.Read(cid[:])
	heads, spt := uint64(16), uint64(63)
	desc := fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=%x\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\n"+
		"# Extent description\nRW %d SPARSE \"disk.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n"+
		"ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"%d\"\nddb.geometry.heads = \"%d\"\nddb.geometry.sectors = \"%d\"\nddb.adapterType = \"lsilogic\"\n",
		cid, capacity, min(capacity/(heads*spt), 65535), heads, spt)
	if len(desc) > 512 {
		return fmt.Errorf("vmdk: descriptor too long")
	}
	if err := write(header(0xffffffffffffffff)); err != nil {
		return err
	}
	if err := write(append([]byte(desc), make([]byte, 512-len(desc))...)); err != nil {
		return err
	}
	if err := write(make([]byte, (overhead-2)*512)); err != nil {
		return err
	}
	gd := make([]uint32, gdEntries)
	gt := make([]uint32, gtes)
	grain := make([]byte, grainSectors*512)
	var zbuf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&zbuf, zlib.NoCompression)
	flushGT := func(idx uint64) error {
		if err := write(marker(gtes*4/512, 1)); err != nil {
			return err
		}
		gd[idx] = uint32(pos / 512)
		b := make([]byte, gtes*4)
		for i, v := range gt {
			binary.LittleEndian.PutUint32(b[i*4:], v)
		}
		clear(gt)
		return write(b)
	}
	for g := uint64(0); g < grains; g++ {
		if g%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		off := int64(g * grainSectors * 512)
		n := min(int64(len(grain)), size-off)
		if _, err := raw.ReadAt(grain[:n], off); err != nil {
			return fmt.Errorf("package vmdk: %w", err)
		}
		if !allZero(grain[:n]) {
			zbuf.Reset()
			zw.Reset(&zbuf)
			zw.Write(grain[:n])
			zw.Close()
			gt[g%gtes] = uint32(pos / 512)
			var m [12]byte
			binary.LittleEndian.PutUint64(m[:], g*grainSectors)
			binary.LittleEndian.PutUint32(m[8:], uint32(zbuf.Len()))
			if err := write(m[:]); err != nil {
				return err
			}
			if err := write(zbuf.Bytes()); err != nil {
				return err
			}
			if err := pad(); err != nil {
				return err
			}
		}
		if g%gtes == gtes-1 || g == grains-1 {
			if err := flushGT(g / gtes); err != nil {
				return err
			}
		}
	}
	if err := write(marker(uint64((gdEntries*4+511)/512), 2)); err != nil {
		return err
	}
	gdOffset := pos / 512
	b := make([]byte, (gdEntries*4+511)/512*512)
	for i, v := range gd {
		binary.LittleEndian.PutUint32(b[i*4:], v)
	}
	if err := write(b); err != nil {
		return err
	}
	if err := write(marker(1, 3)); err != nil {
		return err
	}
	if err := write(header(gdOffset)); err != nil {
		return err
	}
	if err := write(make([]byte, 512)); err != nil { // end of stream
		return err
	}
	return bw.Flush()
}
