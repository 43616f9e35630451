package luks2

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

const (
	binHeaderSize = 4096
	csumOffset    = 448
	csumLen       = 64
	maxHdrSize    = 4 << 20

	// defaults as cryptsetup's luksFormat: 16 KiB headers, payload at 16 MiB
	defaultHdrSize    = 16384
	defaultDataOffset = 16 << 20
	afStripes         = 4000
	areaAlign         = 4096
	digestIterations  = 1000
	cipherName        = "aes-xts-plain64"
)

var (
	magicPrimary   = []byte("LUKS\xba\xbe")
	magicSecondary = []byte("SKUL\xba\xbe")
)

// ErrNotLUKS2 is returned when neither header copy is a LUKS2 header.
var ErrNotLUKS2 = errors.New("not a LUKS2 volume")

// binHeader is the fixed part of a header copy.
type binHeader struct {
	hdrSize   uint64
	seqID     uint64
	label     string
	csumAlg   string
	salt      [64]byte
	uuid      string
	subsystem string
	hdrOffset uint64
}

// u64 is a JSON string holding a decimal uint64, as LUKS2 writes sizes and offsets.
type u64 uint64

func (v u64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(v), 10) + `"`), nil
}

func (v *u64) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a decimal string, got %s", truncate(b))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || s != strconv.FormatUint(n, 10) {
		return fmt.Errorf("bad decimal string %q", truncate([]byte(s)))
	}
	*v = u64(n)
	return nil
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

type metadata struct {
	Keyslots map[string]*keyslotJSON    `json:"keyslots"`
	Tokens   map[string]json.RawMessage `json:"tokens"`
	Segments map[string]*segmentJSON    `json:"segments"`
	Digests  map[string]*digestJSON     `json:"digests"`
	Config   configJSON                 `json:"config"`
}

type keyslotJSON struct {
	Type     string   `json:"type"`
	KeySize  int      `json:"key_size"`
	AF       afJSON   `json:"af"`
	Area     areaJSON `json:"area"`
	KDF      kdfJSON  `json:"kdf"`
	Priority *int     `json:"priority,omitempty"`
}

type afJSON struct {
	Type    string `json:"type"`
	Stripes int    `json:"stripes"`
	Hash    string `json:"hash"`
}

type areaJSON struct {
	Type       string `json:"type"`
	Offset     u64    `json:"offset"`
	Size       u64    `json:"size"`
	Encryption string `json:"encryption"`
	KeySize    int    `json:"key_size"`
}

type kdfJSON struct {
	Type       string `json:"type"`
	Hash       string `json:"hash,omitempty"`
	Iterations int    `json:"iterations,omitempty"`
	Time       int    `json:"time,omitempty"`
	Memory     int    `json:"memory,omitempty"`
	CPUs       int    `json:"cpus,omitempty"`
	Salt       []byte `json:"salt"`
}

type segmentJSON struct {
	Type       string   `json:"type"`
	Offset     u64      `json:"offset"`
	Size       string   `json:"size"`
	IVTweak    u64      `json:"iv_tweak"`
	Encryption string   `json:"encryption"`
	SectorSize int      `json:"sector_size"`
	Integrity  any      `json:"integrity,omitempty"`
	Flags      []string `json:"flags,omitempty"`
}

type digestJSON struct {
	Type       string   `json:"type"`
	Keyslots   []string `json:"keyslots"`
	Segments   []string `json:"segments"`
	Hash       string   `json:"hash"`
	Iterations int      `json:"iterations"`
	Salt       []byte   `json:"salt"`
	Digest     []byte   `json:"digest"`
}

type configJSON struct {
	JSONSize     u64      `json:"json_size"`
	KeyslotsSize u64      `json:"keyslots_size"`
	Flags        []string `json:"flags,omitempty"`
	Requirements any      `json:"requirements,omitempty"`
}

// decodeBin parses and checks one binary header copy (buf holds at least
// binHeaderSize bytes); off is where it was read.
func decodeBin(buf []byte, off uint64) (*binHeader, error) {
	magic := magicPrimary
	if off != 0 {
		magic = magicSecondary
	}
	if !bytes.Equal(buf[:6], magic) {
		return nil, ErrNotLUKS2
	}
	if v := binary.BigEndian.Uint16(buf[6:]); v != 2 {
		return nil, fmt.Errorf("unsupported LUKS version %d", v)
	}
	h := &binHeader{
		hdrSize:   binary.BigEndian.Uint64(buf[8:]),
		seqID:     binary.BigEndian.Uint64(buf[16:]),
		label:     cstring(buf[24:72]),
		csumAlg:   cstring(buf[72:104]),
		uuid:      cstring(buf[168:208]),
		subsystem: cstring(buf[208:256]),
		hdrOffset: binary.BigEndian.Uint64(buf[256:]),
	}
	copy(h.salt[:], buf[104:168])
	if !validHdrSize(h.hdrSize) {
		return nil, fmt.Errorf("invalid header size %d", h.hdrSize)
	}
	if h.hdrOffset != off {
		return nil, fmt.Errorf("header at %d says it is at %d", off, h.hdrOffset)
	}
	if h.csumAlg != "sha256" {
		return nil, fmt.Errorf("unsupported header checksum %q", h.csumAlg)
	}
	return h, nil
}

func validHdrSize(n uint64) bool {
	for s := uint64(defaultHdrSize); s <= maxHdrSize; s *= 2 {
		if n == s {
			return true
		}
	}
	return false
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// readCopy reads and checks the header copy at off: binary header, checksum
// and JSON.
func readCopy(r io.ReaderAt, off uint64) (*binHeader, *metadata, error) {
	buf := make([]byte, binHeaderSize)
	if _, err := r.ReadAt(buf, int64(off)); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, ErrNotLUKS2
		}
		return nil, nil, fmt.Errorf("read header at %d: %w", off, err)
	}
	bh, err := decodeBin(buf, off)
	if err != nil {
		return nil, nil, err
	}
	area := make([]byte, bh.hdrSize)
	if _, err := r.ReadAt(area, int64(off)); err != nil {
		return nil, nil, fmt.Errorf("read header area at %d: %w", off, err)
	}
	want := bytes.Clone(area[csumOffset : csumOffset+32])
	clear(area[csumOffset : csumOffset+csumLen])
	sum := sha256.Sum256(area)
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return nil, nil, fmt.Errorf("header at %d: checksum mismatch", off)
	}
	js := area[binHeaderSize:]
	if i := bytes.IndexByte(js, 0); i >= 0 {
		js = js[:i]
	} else {
		return nil, nil, fmt.Errorf("header at %d: JSON area not terminated", off)
	}
	md, err := parseMetadata(js)
	if err != nil {
		return nil, nil, fmt.Errorf("header at %d: %w", off, err)
	}
	if uint64(md.Config.JSONSize) != bh.hdrSize-binHeaderSize {
		return nil, nil, fmt.Errorf("header at %d: json_size %d does not match header size %d", off, md.Config.JSONSize, bh.hdrSize)
	}
	return bh, md, nil
}

func parseMetadata(js []byte) (*metadata, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	var md metadata
	if err := dec.Decode(&md); err != nil {
		return nil, fmt.Errorf("parse JSON metadata: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse JSON metadata: trailing data")
	}
	if md.Keyslots == nil || md.Segments == nil || md.Digests == nil || md.Tokens == nil {
		return nil, errors.New("JSON metadata lacks keyslots, tokens, segments or digests")
	}
	return &md, nil
}

// encodeCopy renders one header copy (hdrSize bytes) with its checksum.
func encodeCopy(bh *binHeader, md *metadata, secondary bool) ([]byte, error) {
	js, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	if uint64(len(js)) >= bh.hdrSize-binHeaderSize {
		return nil, fmt.Errorf("JSON metadata (%d bytes) does not fit the %d-byte area", len(js), bh.hdrSize-binHeaderSize)
	}
	area := make([]byte, bh.hdrSize)
	off := uint64(0)
	copy(area, magicPrimary)
	if secondary {
		copy(area, magicSecondary)
		off = bh.hdrSize
	}
	binary.BigEndian.PutUint16(area[6:], 2)
	binary.BigEndian.PutUint64(area[8:], bh.hdrSize)
	binary.BigEndian.PutUint64(area[16:], bh.seqID)
	copy(area[24:72], bh.label)
	copy(area[72:104], "sha256")
	if _, err := rand.Read(area[104:168]); err != nil {
		return nil, err
	}
	copy(area[168:208], bh.uuid)
	copy(area[208:256], bh.subsystem)
	binary.BigEndian.PutUint64(area[256:], off)
	copy(area[binHeaderSize:], js)
	sum := sha256.Sum256(area)
	copy(area[csumOffset:], sum[:])
	return area, nil
}
