package diskimage

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// A VMDK descriptor file ("# Disk DescriptorFile") names the extents that
// hold the disk: monolithicFlat and ESXi's vmfs (one flat file),
// twoGbMaxExtentFlat and twoGbMaxExtentSparse (2 GiB pieces, flat or
// hosted sparse). The extents are read from the descriptor's own folder
// only: a name with a path separator, "." or "..", an absolute path, the
// descriptor itself or anything but a regular file (a symlink included) is
// refused, so that a descriptor cannot make Keyholder read and encrypt a
// file elsewhere. Delta links (parentCID), raw device mappings and ESX
// sparse (COWD) extents are refused.

const vmdkDescriptorMagic = "# Disk DescriptorFile"

// maxVMDKDescriptor bounds a descriptor file; real ones are a few hundred
// bytes.
const maxVMDKDescriptor = 64 << 10

// maxVMDKExtents bounds the extent files a descriptor may name (each stays
// open while the image is read): 1024 2-GiB extents are a 2 TiB disk.
const maxVMDKExtents = 1024

var extentRE = regexp.MustCompile(`^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$`)

type vmdkExtent struct {
	start, n int64       // bytes of the virtual disk
	r        io.ReaderAt // nil: a ZERO extent
	off      int64       // where the extent's data starts in r
}

type vmdkDescImage struct {
	size       int64
	createType string
	extents    []vmdkExtent
	files      int
}

// vmdkExtentLine is one parsed extent line.
type vmdkExtentLine struct {
	access, kind, name string
	sectors, offset    int64
}

// isVMDKDescriptor recognises a descriptor as qemu's vmdk_probe does: the
// first line that is neither blank nor a comment is "version=1" (2, 3).
func isVMDKDescriptor(head []byte) bool {
	if bytes.HasPrefix(head, []byte(vmdkDescriptorMagic)) {
		return true
	}
	for len(head) > 0 {
		line, rest, found := bytes.Cut(head, []byte("\n"))
		if !found && len(head) >= 1024 {
			return false // a 1 KiB line: not a descriptor
		}
		line = bytes.TrimRight(line, "\r")
		switch {
		case len(bytes.TrimSpace(line)) == 0 || line[0] == '#':
			head = rest
			continue
		case !found:
			return false
		}
		return bytes.Equal(line, []byte("version=1")) || bytes.Equal(line, []byte("version=2")) || bytes.Equal(line, []byte("version=3"))
	}
	return false
}

// parseVMDKDescriptor reads a descriptor's create type and extent lines.
func parseVMDKDescriptor(d []byte) (createType string, extents []vmdkExtentLine, err error) {
	if !isVMDKDescriptor(d[:min(len(d), 4096)]) {
		return "", nil, fmt.Errorf("%w: not a VMDK descriptor", ErrCorrupt)
	}
	if i := bytes.IndexByte(d, 0); i >= 0 {
		d = d[:i]
	}
	if m := createTypeRE.FindSubmatch(d); m != nil {
		createType = string(m[1])
	}
	if m := parentCIDRE.FindSubmatch(d); m != nil && !bytes.EqualFold(m[1], []byte("ffffffff")) {
		return "", nil, fmt.Errorf("%w: VMDK delta disk (parentCID %s); convert it to a standalone disk first", ErrUnsupported, m[1])
	}
	for _, line := range strings.Split(string(d), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "RW ") && !strings.HasPrefix(line, "RDONLY ") && !strings.HasPrefix(line, "NOACCESS ") {
			continue
		}
		m := extentRE.FindStringSubmatch(line)
		if m == nil {
			return "", nil, fmt.Errorf("%w: VMDK extent line %q", ErrCorrupt, line)
		}
		e := vmdkExtentLine{access: m[1], kind: m[3], name: m[4]}
		if e.sectors, err = strconv.ParseInt(m[2], 10, 64); err != nil || e.sectors <= 0 || e.sectors > maxVirtualSize/512 {
			return "", nil, fmt.Errorf("%w: VMDK extent of %s sectors", ErrCorrupt, m[2])
		}
		if m[5] != "" {
			if e.offset, err = strconv.ParseInt(m[5], 10, 64); err != nil || e.offset > maxVirtualSize/512 {
				return "", nil, fmt.Errorf("%w: VMDK extent offset %s", ErrCorrupt, m[5])
			}
		}
		extents = append(extents, e)
		if len(extents) > maxVMDKExtents {
			return "", nil, fmt.Errorf("%w: VMDK descriptor with more than %d extents", ErrUnsupported, maxVMDKExtents)
		}
	}
	if len(extents) == 0 {
		return "", nil, fmt.Errorf("%w: VMDK descriptor without extents", ErrCorrupt)
	}
	return createType, extents, nil
}

// validExtentName accepts a plain file name in the descriptor's folder.
func validExtentName(name, self string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: VMDK extent without a file name", ErrCorrupt)
	case strings.ContainsAny(name, "/\\\x00") || filepath.IsAbs(name) || filepath.VolumeName(name) != "":
		return fmt.Errorf("%w: VMDK extent %q is not a file in the descriptor's folder", ErrUnsupported, name)
	case name == "." || name == ".." || name != filepath.Base(name):
		return fmt.Errorf("%w: VMDK extent %q is not a file in the descriptor's folder", ErrUnsupported, name)
	case name == self:
		return fmt.Errorf("%w: VMDK extent %q is the descriptor itself", ErrCorrupt, name)
	}
	return nil
}

// openVMDKDescriptor reads the descriptor in f and opens its extents from
// dir. It returns the extent files, which the caller closes.
func openVMDKDescriptor(f *os.File, size int64, dir string) (Image, []*os.File, error) {
	if size > maxVMDKDescriptor {
		return nil, nil, fmt.Errorf("%w: VMDK descriptor of %d bytes", ErrCorrupt, size)
	}
	d := make([]byte, size)
	if _, err := f.ReadAt(d, 0); err != nil && err != io.EOF {
		return nil, nil, err
	}
	createType, lines, err := parseVMDKDescriptor(d)
	if err != nil {
		return nil, nil, err
	}
	im := &vmdkDescImage{createType: createType}
	var files []*os.File
	fail := func(err error) (Image, []*os.File, error) {
		for _, x := range files {
			x.Close()
		}
		return nil, nil, err
	}
	self := filepath.Base(f.Name())
	for _, l := range lines {
		n := l.sectors * 512
		if l.access == "NOACCESS" {
			return fail(fmt.Errorf("%w: VMDK extent %q is marked NOACCESS", ErrUnsupported, l.name))
		}
		ext := vmdkExtent{start: im.size, n: n}
		switch l.kind {
		case "ZERO":
		case "FLAT", "VMFS", "SPARSE":
			if err := validExtentName(l.name, self); err != nil {
				return fail(err)
			}
			p := filepath.Join(dir, l.name)
			st, err := os.Lstat(p)
			if err != nil {
				return fail(fmt.Errorf("VMDK extent %q: %w", l.name, err))
			}
			if !st.Mode().IsRegular() {
				return fail(fmt.Errorf("%w: VMDK extent %q is not a regular file (a symlink or a device)", ErrUnsupported, l.name))
			}
			x, err := os.Open(p)
			if err != nil {
				return fail(fmt.Errorf("VMDK extent %q: %w", l.name, err))
			}
			files = append(files, x)
			xst, err := x.Stat()
			if err != nil {
				return fail(err)
			}
			if !os.SameFile(st, xst) {
				return fail(fmt.Errorf("%w: VMDK extent %q changed while it was opened", ErrUnsupported, l.name))
			}
			if l.kind == "SPARSE" {
				sp, err := openVMDK(x, xst.Size())
				if err != nil {
					return fail(fmt.Errorf("VMDK extent %q: %w", l.name, err))
				}
				if sp.size < n {
					return fail(fmt.Errorf("%w: VMDK sparse extent %q holds %d bytes, the descriptor says %d", ErrCorrupt, l.name, sp.size, n))
				}
				ext.r = sp
			} else {
				ext.off = l.offset * 512
				if ext.off+n > xst.Size() {
					return fail(fmt.Errorf("%w: VMDK flat extent %q is %d bytes, the descriptor needs %d", ErrCorrupt, l.name, xst.Size(), ext.off+n))
				}
				ext.r = x
			}
		case "VMFSSPARSE", "SESPARSE":
			return fail(fmt.Errorf("%w: VMDK %s (delta) extent %q; consolidate the snapshots first", ErrUnsupported, l.kind, l.name))
		default:
			return fail(fmt.Errorf("%w: VMDK extent type %s (%q); export the disk as a monolithic VMDK first", ErrUnsupported, l.kind, l.name))
		}
		im.extents = append(im.extents, ext)
		im.size += n
		if im.size > maxVirtualSize {
			return fail(fmt.Errorf("%w: VMDK of more than %d bytes", ErrUnsupported, int64(maxVirtualSize)))
		}
	}
	im.files = len(files)
	return im, files, nil
}

func (m *vmdkDescImage) Size() int64    { return m.size }
func (m *vmdkDescImage) Format() Format { return VMDK }
func (m *vmdkDescImage) Detail() string {
	t := m.createType
	if t == "" {
		t = "descriptor"
	}
	if m.files == 1 {
		return fmt.Sprintf("vmdk %s, 1 extent file", t)
	}
	return fmt.Sprintf("vmdk %s, %d extent files", t, m.files)
}

func (m *vmdkDescImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset")
	}
	if off >= m.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), m.size)
	n := 0
	i := sort.Search(len(m.extents), func(i int) bool { return m.extents[i].start+m.extents[i].n > off })
	for ; off < end && i < len(m.extents); i++ {
		e := m.extents[i]
		in := off - e.start
		l := min(e.n-in, end-off)
		dst := p[n : n+int(l)]
		if e.r == nil {
			clear(dst)
		} else if k, err := e.r.ReadAt(dst, e.off+in); k < len(dst) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n + k, err
		}
		n += int(l)
		off += l
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
