package luks2

import (
	"crypto/sha256"
	"fmt"
	"hash"

	"keyholder/backend/luks2/internal/xts"
)

func sha256New() hash.Hash { return sha256.New() }

// SegmentCipher encrypts and decrypts payload sectors of a volume.
type SegmentCipher struct {
	c          *xts.Cipher
	sectorSize int
	ivTweak    uint64
}

// NewCipher returns the payload cipher for volumeKey with sectorSize-byte
// sectors. Wipe it when done.
func NewCipher(volumeKey []byte, sectorSize int) (*SegmentCipher, error) {
	if !validSectorSize(sectorSize) {
		return nil, fmt.Errorf("sector size %d", sectorSize)
	}
	c, err := xts.New(volumeKey)
	if err != nil {
		return nil, err
	}
	return &SegmentCipher{c: c, sectorSize: sectorSize}, nil
}

// PayloadCipher returns the payload cipher of v for its volume key.
func (v *Volume) PayloadCipher(volumeKey []byte) (*SegmentCipher, error) {
	c, err := NewCipher(volumeKey, v.SectorSize())
	if err != nil {
		return nil, err
	}
	c.ivTweak = uint64(v.md.Segments["0"].IVTweak)
	return c, nil
}

// SectorSize returns the cipher's sector size.
func (s *SegmentCipher) SectorSize() int { return s.sectorSize }

// Encrypt encrypts src into dst (which may alias src); off is the offset of
// src[0] from the start of the payload and must be sector-aligned, and
// len(src) a whole number of sectors.
func (s *SegmentCipher) Encrypt(dst, src []byte, off int64) {
	s.check(src, off)
	s.c.Encrypt(dst, src, s.sectorSize, s.ivTweak+uint64(off)/512, uint64(s.sectorSize/512))
}

// Decrypt is the inverse of Encrypt.
func (s *SegmentCipher) Decrypt(dst, src []byte, off int64) {
	s.check(src, off)
	s.c.Decrypt(dst, src, s.sectorSize, s.ivTweak+uint64(off)/512, uint64(s.sectorSize/512))
}

func (s *SegmentCipher) check(src []byte, off int64) {
	if off < 0 || off%int64(s.sectorSize) != 0 || len(src)%s.sectorSize != 0 {
		panic("luks2: payload range is not sector aligned")
	}
}

// Wipe erases the cipher's key schedule.
func (s *SegmentCipher) Wipe() { s.c.Wipe() }
