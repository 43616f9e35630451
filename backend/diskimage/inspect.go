package diskimage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"keyholder/backend/luks2"
)

// Info is what Inspect finds in an image.
type Info struct {
	Path           string      `json:"path"`
	Format         Format      `json:"format"`
	Detail         string      `json:"detail"`
	FileSize       int64       `json:"file_size"`
	VirtualSize    int64       `json:"virtual_size"`
	PartitionTable string      `json:"partition_table"` // "gpt", "mbr" or "none"
	DiskGUID       string      `json:"disk_guid,omitempty"`
	Partitions     []Partition `json:"partitions"`
	Filesystem     string      `json:"filesystem,omitempty"` // on the whole disk, without a partition table
	// Root is the partition os mode would encrypt (0: none found).
	Root int `json:"root_partition,omitempty"`
	// RawWarning, for a raw file with no partition table and no
	// recognised filesystem, says why preparing it needs the officer's
	// confirmation (Options.ConfirmRaw).
	RawWarning string `json:"raw_warning,omitempty"`
}

// Inspect opens path and describes it.
func Inspect(path string) (*Info, error) {
	f, err := OpenFile(path)
	if errors.Is(err, ErrUnsupported) {
		if info := inspectLUKS(path); info != nil {
			return info, nil
		}
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	info := &Info{Path: path, Format: f.Format(), Detail: f.Detail(), FileSize: st.Size(), VirtualSize: f.Size(), PartitionTable: "none", Partitions: []Partition{}}
	g, err := ReadGPT(f, f.Size())
	switch {
	case err == nil:
		info.PartitionTable, info.DiskGUID = "gpt", g.DiskGUID
		for _, p := range g.Partitions {
			p.Filesystem = DetectFilesystem(io.NewSectionReader(f, p.Offset(), p.Size()))
			info.Partitions = append(info.Partitions, p)
		}
		if r, err := rootPartition(info.Partitions); err == nil {
			info.Root = r.Index
		}
	case errors.Is(err, ErrNoGPT):
		if ps := readMBR(f, f.Size()); len(ps) > 0 {
			info.PartitionTable = "mbr"
			for _, p := range ps {
				p.Filesystem = DetectFilesystem(io.NewSectionReader(f, p.Offset(), p.Size()))
				info.Partitions = append(info.Partitions, p)
			}
		} else {
			info.Filesystem = DetectFilesystem(f)
		}
	default:
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	info.RawWarning = RawWarning(f)
	return info, nil
}

// readMBR lists the primary partitions of an MBR disk (none for a
// protective MBR or a missing signature).
func readMBR(r io.ReaderAt, size int64) []Partition {
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, 0); err != nil || b[510] != 0x55 || b[511] != 0xaa {
		return nil
	}
	var out []Partition
	for i := 0; i < 4; i++ {
		e := b[446+16*i:]
		typ, start, n := e[4], uint64(le32(e[8:])), uint64(le32(e[12:]))
		if typ == 0 || n == 0 || typ == 0xee || int64(start+n)*512 > size {
			continue
		}
		out = append(out, Partition{Index: i + 1, Type: fmt.Sprintf("0x%02x", typ), FirstLBA: start, LastLBA: start + n - 1})
	}
	return out
}

// DetectFilesystem names the filesystem (or container) at the start of r
// by its magic number: ext2/3/4, xfs, btrfs, vfat, exfat, ntfs, f2fs,
// squashfs, swap, LUKS, LVM.
func DetectFilesystem(r io.ReaderAt) string {
	b := make([]byte, 68<<10)
	n, _ := r.ReadAt(b, 0)
	b = b[:n]
	at := func(off int, magic string) bool {
		return off+len(magic) <= len(b) && string(b[off:off+len(magic)]) == magic
	}
	switch {
	case at(0, "LUKS\xba\xbe"):
		return "crypto_LUKS"
	case at(1080, "\x53\xef"):
		return "ext4"
	case at(0, "XFSB"):
		return "xfs"
	case at(0x10040, "_BHRfS_M"):
		return "btrfs"
	case at(3, "NTFS    "):
		return "ntfs"
	case at(3, "EXFAT   "):
		return "exfat"
	case at(1024, "\x10\x20\xf5\xf2"):
		return "f2fs"
	case at(0, "hsqs"):
		return "squashfs"
	case at(0x52, "FAT32   "), at(0x36, "FAT16   "), at(0x36, "FAT12   "):
		return "vfat"
	case at(4086, "SWAPSPACE2"):
		return "swap"
	case at(512, "LABELONE"):
		return "LVM2_member"
	case len(b) > 0 && bytes.Count(b[:min(len(b), 4096)], []byte{0}) == min(len(b), 4096):
		return ""
	}
	return "unknown"
}

// inspectLUKS describes a LUKS2 volume (a prepared data-mode image).
func inspectLUKS(path string) *Info {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	v, err := luks2.Open(f)
	if err != nil {
		return nil
	}
	st, _ := f.Stat()
	d := fmt.Sprintf("LUKS2 %s, UUID %s, %d-byte sectors, %d keyslots", v.Cipher(), v.UUID(), v.SectorSize(), len(v.Keyslots()))
	if t, ok := v.Token(); ok {
		d += fmt.Sprintf(", volume %s generation %d", t.VolumeID, t.Generation)
	}
	return &Info{Path: path, Format: LUKS, Detail: d, FileSize: st.Size(), VirtualSize: st.Size() - v.PayloadOffset(), PartitionTable: "none", Partitions: []Partition{}, Filesystem: "crypto_LUKS"}
}
