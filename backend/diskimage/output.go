package diskimage

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"
)

// finishOutput turns the raw temporary disk into the requested output and
// returns the file to rename (its name is the last of temps) and, for the
// packaged outputs, their SHA-256 and size, computed as they were written
// (empty: hash the file). Raw and AWS (raw too) outputs are the disk as is.
func finishOutput(ctx context.Context, o Options, raw *os.File, size int64, dir, dest string, temps *[]string) (*os.File, string, int64, error) {
	switch o.Output {
	case OutputAzure:
		// Azure wants a fixed VHD whose virtual size is a whole MiB.
		vs := roundUp64(size, 1<<20)
		if err := raw.Truncate(vs); err != nil {
			return nil, "", 0, err
		}
		if _, err := raw.WriteAt(vhdFooter(vs, time.Now()), vs); err != nil {
			return nil, "", 0, fmt.Errorf("write VHD footer: %w", err)
		}
		return raw, "", 0, nil
	case OutputGCP, OutputVMDK:
		f, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".keyholder-tmp-*")
		if err != nil {
			return nil, "", 0, err
		}
		lockTemp(f)
		*temps = append(*temps, f.Name())
		write := writeGCP
		if o.Output == OutputVMDK {
			write = writeVMDKStream
		}
		hw := &hashingWriter{w: f, h: sha256.New()}
		src := openDirect(raw, os.O_RDONLY)
		err = write(ctx, hw, src, size)
		src.Close()
		if err != nil {
			f.Close()
			return nil, "", 0, err
		}
		// The raw temporary is no longer needed.
		return f, hex.EncodeToString(hw.h.Sum(nil)), hw.n, nil
	}
	return raw, "", 0, nil
}

// hashingWriter hashes and counts what it writes.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hashPieces(hw.h, p[:n])
	hw.n += int64(n)
	return n, err
}

// writeGCP writes disk.raw into a gzip'd tar as Compute Engine's image
// import wants it: a whole number of GiB, so a smaller disk is padded with
// zeros (an os-mode plan is that size already, its backup GPT at the end).
// Encrypted data does not compress, so the gzip stream stores it (level 0)
// and costs no CPU.
func writeGCP(ctx context.Context, w io.Writer, raw io.ReaderAt, size int64) error {
	zw, _ := gzip.NewWriterLevel(w, gzip.NoCompression)
	tw := tar.NewWriter(zw)
	padded := roundUp64(size, outputAlign(OutputGCP))
	if err := tw.WriteHeader(&tar.Header{Name: "disk.raw", Mode: 0o644, Size: padded, Format: tar.FormatGNU, ModTime: time.Now()}); err != nil {
		return err
	}
	buf := make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(chunk, size-off))
		if _, err := raw.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("package gcp: %w", err)
		}
		if _, err := tw.Write(buf[:n]); err != nil {
			return fmt.Errorf("package gcp: %w", err)
		}
	}
	clear(buf)
	for off := size; off < padded; off += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := tw.Write(buf[:min(chunk, padded-off)]); err != nil {
			return fmt.Errorf("package gcp: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// vhdFooter is a fixed-disk VHD footer for a disk of size bytes.
func vhdFooter(size int64, now time.Time) []byte {
	f := make([]byte, 512)
	copy(f, "conectix")
	binary.BigEndian.PutUint32(f[8:], 2)           // features: reserved bit
	binary.BigEndian.PutUint32(f[12:], 0x00010000) // version
	binary.BigEndian.PutUint64(f[16:], 0xffffffffffffffff)
	binary.BigEndian.PutUint32(f[24:], uint32(now.Unix()-946684800))
	// Creator "win " (as Hyper-V writes): readers such as qemu then trust
	// the current size instead of deriving it from the CHS geometry.
	copy(f[28:], "win ")
	binary.BigEndian.PutUint32(f[32:], 0x000a0000)
	copy(f[36:], "Wi2k")
	binary.BigEndian.PutUint64(f[40:], uint64(size))
	binary.BigEndian.PutUint64(f[48:], uint64(size))
	c, h, s := chs(size)
	binary.BigEndian.PutUint16(f[56:], c)
	f[58], f[59] = h, s
	binary.BigEndian.PutUint32(f[60:], 2) // fixed
	rand.Read(f[68:84])
	var sum uint32
	for _, b := range f {
		sum += uint32(b)
	}
	binary.BigEndian.PutUint32(f[64:], ^sum)
	return f
}

// chs is the VHD specification's geometry algorithm.
func chs(size int64) (uint16, byte, byte) {
	total := size / 512
	if total > 65535*16*255 {
		total = 65535 * 16 * 255
	}
	var spt, heads, cth int64
	if total >= 65535*16*63 {
		spt, heads = 255, 16
		cth = total / spt
	} else {
		spt = 17
		cth = total / spt
		heads = (cth + 1023) / 1024
		if heads < 4 {
			heads = 4
		}
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = total / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = total / spt
		}
	}
	return uint16(cth / heads), byte(heads), byte(spt)
}
