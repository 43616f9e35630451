package diskimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
)

// GPT (UEFI specification, chapter 5) with 512-byte logical sectors.

// Well-known partition type GUIDs.
const (
	TypeESP        = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
	TypeXBOOTLDR   = "bc13c2ff-59e6-4262-a352-b275fd6f7172" // a separate /boot
	TypeLinuxFS    = "0fc63daf-8483-4772-8e79-3d69d8477de4"
	TypeRootX86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
	TypeRootARM64  = "b921b045-1df0-41c3-af44-4c6f280d3fae"
	TypeBIOSBoot   = "21686148-6449-6e6f-744e-656564454649"
	TypeLinuxSwap  = "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
)

var typeNames = map[string]string{
	TypeESP: "EFI system", TypeXBOOTLDR: "Linux extended boot", TypeLinuxFS: "Linux filesystem",
	TypeRootX86_64: "Linux root (x86-64)", TypeRootARM64: "Linux root (ARM64)", TypeBIOSBoot: "BIOS boot",
	TypeLinuxSwap: "Linux swap", "e6d6d379-f507-44c2-a23c-238f2a3df928": "Linux LVM",
	"ca7d7ccb-63ed-4c53-861c-1742536059cc": "Linux LUKS", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "Microsoft basic data",
}

const sector = 512

// ErrNoGPT means the disk has no (valid) GUID partition table.
var ErrNoGPT = errors.New("no GUID partition table")

// Partition is one GPT (or MBR) partition.
type Partition struct {
	Index      int    `json:"index"` // 1-based, as Linux numbers them
	Type       string `json:"type"`  // GUID (GPT) or "0xNN" (MBR)
	TypeName   string `json:"type_name,omitempty"`
	UUID       string `json:"uuid,omitempty"` // PARTUUID
	Name       string `json:"name,omitempty"`
	FirstLBA   uint64 `json:"first_lba"`
	LastLBA    uint64 `json:"last_lba"`
	Attributes uint64 `json:"attributes,omitempty"`
	Filesystem string `json:"filesystem,omitempty"` // detected content
}

// Offset is the partition's first byte.
func (p Partition) Offset() int64 { return int64(p.FirstLBA) * sector }

// Size is the partition's length in bytes.
func (p Partition) Size() int64 { return int64(p.LastLBA-p.FirstLBA+1) * sector }

// GPT is a parsed GUID partition table.
type GPT struct {
	DiskGUID    string      `json:"disk_guid"`
	FirstUsable uint64      `json:"first_usable_lba"`
	LastUsable  uint64      `json:"last_usable_lba"`
	NumEntries  int         `json:"-"`
	EntrySize   int         `json:"-"`
	Partitions  []Partition `json:"partitions"`
}

// ReadGPT reads the primary GPT of a disk of size bytes (the backup if the
// primary is damaged) and checks its CRCs and bounds.
func ReadGPT(r io.ReaderAt, size int64) (*GPT, error) {
	if size < 68*sector {
		return nil, ErrNoGPT
	}
	g, err := readGPTAt(r, 1, size)
	if err == nil {
		return g, nil
	}
	if g2, err2 := readGPTAt(r, uint64(size/sector-1), size); err2 == nil {
		return g2, nil
	}
	return nil, err
}

func readGPTAt(r io.ReaderAt, lba uint64, size int64) (*GPT, error) {
	h := make([]byte, sector)
	if _, err := r.ReadAt(h, int64(lba)*sector); err != nil {
		return nil, err
	}
	if string(h[:8]) != "EFI PART" {
		return nil, ErrNoGPT
	}
	hs := le32(h[12:])
	if hs < 92 || hs > sector {
		return nil, fmt.Errorf("%w: GPT header size %d", ErrCorrupt, hs)
	}
	want := le32(h[16:])
	hc := bytes.Clone(h[:hs])
	clear(hc[16:20])
	if crc32.ChecksumIEEE(hc) != want {
		return nil, fmt.Errorf("%w: GPT header CRC", ErrCorrupt)
	}
	if le64(h[24:]) != lba {
		return nil, fmt.Errorf("%w: GPT header at LBA %d says %d", ErrCorrupt, lba, le64(h[24:]))
	}
	lastLBA := uint64(size/sector - 1)
	g := &GPT{FirstUsable: le64(h[40:]), LastUsable: le64(h[48:]), DiskGUID: guidString(h[56:72])}
	entriesLBA := le64(h[72:])
	g.NumEntries, g.EntrySize = int(le32(h[80:])), int(le32(h[84:]))
	if g.EntrySize < 128 || g.EntrySize > 4096 || g.EntrySize%8 != 0 || g.NumEntries < 1 || g.NumEntries > 4096 {
		return nil, fmt.Errorf("%w: GPT with %d entries of %d bytes", ErrCorrupt, g.NumEntries, g.EntrySize)
	}
	tbl := make([]byte, g.NumEntries*g.EntrySize)
	if entriesLBA > lastLBA || int64(entriesLBA)*sector+int64(len(tbl)) > size {
		return nil, fmt.Errorf("%w: GPT entries at LBA %d outside the disk", ErrCorrupt, entriesLBA)
	}
	if _, err := r.ReadAt(tbl, int64(entriesLBA)*sector); err != nil {
		return nil, err
	}
	if crc32.ChecksumIEEE(tbl) != le32(h[88:]) {
		return nil, fmt.Errorf("%w: GPT partition entries CRC", ErrCorrupt)
	}
	if g.FirstUsable > g.LastUsable || g.LastUsable > lastLBA {
		return nil, fmt.Errorf("%w: GPT usable range %d-%d on a disk of %d sectors", ErrCorrupt, g.FirstUsable, g.LastUsable, lastLBA+1)
	}
	for i := 0; i < g.NumEntries; i++ {
		e := tbl[i*g.EntrySize : (i+1)*g.EntrySize]
		if allZero(e[:16]) {
			continue
		}
		p := Partition{Index: i + 1, Type: guidString(e[0:16]), UUID: guidString(e[16:32]),
			FirstLBA: le64(e[32:]), LastLBA: le64(e[40:]), Attributes: le64(e[48:]), Name: utf16Name(e[56:128])}
		p.TypeName = typeNames[p.Type]
		if p.FirstLBA > p.LastLBA || p.FirstLBA < g.FirstUsable || p.LastLBA > g.LastUsable {
			return nil, fmt.Errorf("%w: GPT partition %d spans LBA %d-%d outside %d-%d", ErrCorrupt, p.Index, p.FirstLBA, p.LastLBA, g.FirstUsable, g.LastUsable)
		}
		g.Partitions = append(g.Partitions, p)
	}
	for i, a := range g.Partitions {
		for _, b := range g.Partitions[i+1:] {
			if a.FirstLBA <= b.LastLBA && b.FirstLBA <= a.LastLBA {
				return nil, fmt.Errorf("%w: GPT partitions %d and %d overlap", ErrCorrupt, a.Index, b.Index)
			}
		}
	}
	return g, nil
}

// Encode renders the table for a disk of diskSize bytes: the protective
// MBR with the primary header and entries (LBA 0-33) and the backup entries
// with the backup header (the last 33 sectors). It recomputes the usable
// range and writes 128 entries of 128 bytes.
func (g *GPT) Encode(diskSize int64) (head, tail []byte, err error) {
	last := uint64(diskSize/sector - 1)
	if diskSize%sector != 0 || last < 67 {
		return nil, nil, fmt.Errorf("GPT: disk of %d bytes", diskSize)
	}
	const n, es = 128, 128
	g.FirstUsable, g.LastUsable = 34, last-33
	tbl := make([]byte, n*es)
	for _, p := range g.Partitions {
		if p.Index < 1 || p.Index > n || p.FirstLBA < g.FirstUsable || p.LastLBA > g.LastUsable || p.FirstLBA > p.LastLBA {
			return nil, nil, fmt.Errorf("GPT: partition %d at LBA %d-%d does not fit", p.Index, p.FirstLBA, p.LastLBA)
		}
		e := tbl[(p.Index-1)*es:]
		if err := putGUID(e[0:16], p.Type); err != nil {
			return nil, nil, err
		}
		if err := putGUID(e[16:32], p.UUID); err != nil {
			return nil, nil, err
		}
		binary.LittleEndian.PutUint64(e[32:], p.FirstLBA)
		binary.LittleEndian.PutUint64(e[40:], p.LastLBA)
		binary.LittleEndian.PutUint64(e[48:], p.Attributes)
		for i, c := range utf16.Encode([]rune(p.Name)) {
			if i >= 36 {
				break
			}
			binary.LittleEndian.PutUint16(e[56+2*i:], c)
		}
	}
	tcrc := crc32.ChecksumIEEE(tbl)
	header := func(my, alt, entries uint64) []byte {
		h := make([]byte, sector)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], g.FirstUsable)
		binary.LittleEndian.PutUint64(h[48:], g.LastUsable)
		putGUID(h[56:72], g.DiskGUID)
		binary.LittleEndian.PutUint64(h[72:], entries)
		binary.LittleEndian.PutUint32(h[80:], n)
		binary.LittleEndian.PutUint32(h[84:], es)
		binary.LittleEndian.PutUint32(h[88:], tcrc)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	mbr := make([]byte, sector)
	pe := mbr[446:]
	pe[1], pe[2], pe[3] = 0x00, 0x02, 0x00 // CHS 0/0/2
	pe[4] = 0xee
	pe[5], pe[6], pe[7] = 0xff, 0xff, 0xff
	binary.LittleEndian.PutUint32(pe[8:], 1)
	binary.LittleEndian.PutUint32(pe[12:], uint32(min(last, 0xffffffff)))
	mbr[510], mbr[511] = 0x55, 0xaa
	head = append(append(mbr, header(1, last, 2)...), tbl...)
	tail = append(bytes.Clone(tbl), header(last, 1, last-32)...)
	return head, tail, nil
}

func guidString(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le32(b), le16(b[4:]), le16(b[6:]), b[8:10], b[10:16])
}

func putGUID(b []byte, s string) error {
	var raw [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		return fmt.Errorf("GPT: bad GUID %q", s)
	}
	for i := 0; i < 16; i++ {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return fmt.Errorf("GPT: bad GUID %q", s)
		}
		raw[i] = byte(v)
	}
	binary.LittleEndian.PutUint32(b, binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint16(b[4:], binary.BigEndian.Uint16(raw[4:]))
	binary.LittleEndian.PutUint16(b[6:], binary.BigEndian.Uint16(raw[6:]))
	copy(b[8:16], raw[8:16])
	return nil
}

func utf16Name(b []byte) string {
	var u []uint16
	for i := 0; i+1 < len(b); i += 2 {
		c := le16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
