package diskimage

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// Modes of Prepare.
const (
	// ModeData encrypts the whole disk into one LUKS2 volume.
	ModeData = "data"
	// ModeOS keeps the EFI system partition and a separate /boot in clear
	// and encrypts only the root partition into a LUKS2 partition.
	ModeOS = "os"
)

// luksHeaderSize is the room the LUKS2 header and keyslots take before the
// payload (cryptsetup's default data offset).
const luksHeaderSize = 16 << 20

// span is one piece of the output: n bytes at dst, the first srcN of them
// copied from the source at src and the rest zeros, encrypted as payload
// offset pay when enc. dst < 0 means read (and hash) the source only.
type span struct {
	dst, src, n, srcN int64
	enc               bool
	pay               int64
}

// plan says how a source disk becomes the output disk.
type plan struct {
	size    int64  // output disk size
	header  int64  // where the LUKS2 header goes
	spans   []span // in source order, covering the source exactly once
	gptHead []byte // written at 0 (os mode)
	gptTail []byte // written at size-len(gptTail)
	root    *Partition
	newRoot *Partition
	gpt     *GPT
	// gz, if set, frames the disk as a gcp package as it is written
	// (data mode only).
	gz *gzFrame
}

func dataPlan(srcSize int64, sectorSize int) *plan {
	padded := roundUp64(srcSize, int64(sectorSize))
	p := &plan{size: luksHeaderSize + padded, header: 0}
	p.spans = append(p.spans, span{dst: luksHeaderSize, src: 0, n: padded, srcN: srcSize, enc: true, pay: 0})
	return p
}

// rootPartition picks the partition os mode encrypts: the one typed as a
// Linux root partition, else the largest Linux filesystem partition that is
// neither the ESP nor an extended boot partition.
func rootPartition(ps []Partition) (Partition, error) {
	var cands []Partition
	for _, p := range ps {
		if p.Type == TypeRootX86_64 || p.Type == TypeRootARM64 {
			return p, nil
		}
		if p.Type == TypeLinuxFS && p.Filesystem != "vfat" {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return Partition{}, errors.New("no root partition: no Linux root or Linux filesystem partition in the GPT")
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Size() > cands[j].Size() })
	return cands[0], nil
}

// osPlan keeps every partition but the root in clear, grows the root by
// the LUKS2 header (and to a whole number of encryption sectors), moves
// the partitions behind it, and rewrites the GPT.
//
// align is the granularity of the cloud's disk sizes (see outputAlign): the
// disk grows to a multiple of it, and the backup GPT goes to the new end.
func osPlan(im Image, sectorSize int, align int64) (*plan, error) {
	g, err := ReadGPT(im, im.Size())
	if err != nil {
		return nil, fmt.Errorf("os mode needs a GPT disk: %w", err)
	}
	for i := range g.Partitions {
		pp := &g.Partitions[i]
		pp.Filesystem = DetectFilesystem(sectionOf(im, pp.Offset(), pp.Size()))
	}
	root, err := rootPartition(g.Partitions)
	if err != nil {
		return nil, err
	}
	if root.Filesystem == "crypto_LUKS" {
		return nil, fmt.Errorf("%w: root partition %d is already encrypted", ErrUnsupported, root.Index)
	}
	if root.Offset()%int64(sectorSize) != 0 {
		return nil, fmt.Errorf("root partition %d does not start on a %d-byte boundary; use --sector-size 512", root.Index, sectorSize)
	}
	srcSize := im.Size()
	if srcSize%sector != 0 {
		return nil, fmt.Errorf("disk size %d is not a whole number of sectors", srcSize)
	}
	payload := roundUp64(root.Size(), int64(sectorSize))
	shift := luksHeaderSize + payload - root.Size()
	p := &plan{size: roundUp64(srcSize+shift, max(align, sector)), header: root.Offset(), gpt: g}
	rs, re := root.Offset(), root.Offset()+root.Size()
	tailStart := srcSize - 33*sector // backup GPT, rewritten
	p.spans = []span{
		{dst: 0, src: 0, n: rs, srcN: rs},
		{dst: rs + luksHeaderSize, src: rs, n: payload, srcN: root.Size(), enc: true},
	}
	if tailStart > re {
		p.spans = append(p.spans, span{dst: re + shift, src: re, n: tailStart - re, srcN: tailStart - re})
	}
	t0 := max(tailStart, re)
	p.spans = append(p.spans, span{dst: -1, src: t0, n: srcSize - t0, srcN: srcSize - t0})

	ng := *g
	ng.Partitions = nil
	for _, q := range g.Partitions {
		switch {
		case q.Index == root.Index:
			q.LastLBA = q.FirstLBA + uint64((luksHeaderSize+payload)/sector) - 1
			q.Filesystem = "crypto_LUKS"
			nr := q
			p.newRoot = &nr
		case q.FirstLBA > root.LastLBA:
			q.FirstLBA += uint64(shift / sector)
			q.LastLBA += uint64(shift / sector)
		}
		ng.Partitions = append(ng.Partitions, q)
	}
	head, tail, err := ng.Encode(p.size)
	if err != nil {
		return nil, err
	}
	// Keep the boot code of the original MBR (BIOS boot loaders live there).
	var mbr [440]byte
	if _, err := im.ReadAt(mbr[:], 0); err != nil {
		return nil, err
	}
	copy(head, mbr[:])
	p.gptHead, p.gptTail = head, tail
	p.root = &root
	p.gpt = &ng
	return p, nil
}

func roundUp64(n, a int64) int64 { return (n + a - 1) / a * a }

// outputAlign is the size granularity of an output's disk: Compute Engine
// imports only a disk.raw of whole GiB, Azure only VHDs of whole MiB.
func outputAlign(output string) int64 {
	switch output {
	case OutputGCP:
		return 1 << 30
	case OutputAzure:
		return 1 << 20
	}
	return sector
}

func sectionOf(r io.ReaderAt, off, n int64) *io.SectionReader { return io.NewSectionReader(r, off, n) }
