// Package xts implements AES-XTS (IEEE P1619) as dm-crypt uses it for
// aes-xts-plain64: every sector is its own XTS data unit, and the tweak of a
// sector is the little-endian 128-bit encoding of its IV.
//
// It differs from golang.org/x/crypto/xts in speed only. On amd64 there are
// three assembly kernels, chosen once from CPUID, for both directions:
//
//   - VAES with AVX-512 (the default on AMD, i.e. Zen 4 and later): sixteen
//     blocks per iteration in four ZMM registers, all round keys held in
//     registers, and the next sixteen tweaks made (t·x^16, with byte shifts
//     rather than VPCLMULQDQ, which competes with VAESENC for ports) while
//     the current blocks go through the AES rounds.
//   - VAES with AVX2 (VAES CPUs without AVX-512, and Intel ones, several of
//     which lower their clock for 512-bit work): sixteen blocks per
//     iteration in eight YMM registers, two blocks each; the eight tweak
//     pairs of the next batch are made from a pair [t, t·x] by shift,
//     carry and a carry-less fold of the overflow (as Linux's
//     aes-xts-avx-x86_64.S does), during the rounds, into a stack buffer.
//   - AES-NI: eight blocks at once in XMM registers (the AES rounds of eight
//     blocks are interleaved so the pipeline stays full).
//
// With VAES and sectors of a whole number of 256 bytes (all dm-crypt sector
// sizes), the sector tweaks are encrypted 32 at a time with VAES and the 32
// sectors go to the kernel in one call. Otherwise, within a sector, runs of
// sixteen blocks go to the VAES kernel, a remaining eight to the AES-NI
// kernel and the last few blocks to the pure-Go path (crypto/aes), which is
// also the whole of it on other architectures.
//
// Measured on one core of an AMD EPYC (Zen 4), AES-256 (64-byte keys), 1 MiB
// per call, medians of five 2-second runs on a shared machine:
//
//	sector  ZMM VAES     YMM VAES     AES-NI      pure Go
//	4096    14.9 GB/s    13.3 GB/s    6.2 GB/s    0.6 GB/s
//	512     13.4 GB/s    10.7 GB/s    5.6 GB/s
//
// The kernels' key schedules come from AESKEYGENASSIST and AESIMC
// (xts_amd64.s, written by gen_aesni.go); keys.go has the same schedule in
// constant-time Go. Neither looks up a table with key bytes.
//
// Decryption runs at the speed of encryption. Ciphertext stealing is not
// implemented: sectors are always a whole number of 16-byte blocks.
package xts

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"unsafe"
)

// Cipher is AES-XTS with a 256- or 512-bit key (AES-128 or AES-256).
type Cipher struct {
	k1, k2 cipher.Block
	fast   *roundKeys // nil when the assembly path is not available
	fast2  *roundKeys // the tweak key's schedule, for eight tweaks at once
}

// ErrKeySize is returned for a key that is not 32 or 64 bytes.
var ErrKeySize = errors.New("xts: key must be 32 or 64 bytes")

// New returns an XTS cipher for key (the data key followed by the tweak key).
func New(key []byte) (*Cipher, error) {
	if len(key) != 32 && len(key) != 64 {
		return nil, ErrKeySize
	}
	h := len(key) / 2
	k1, err := aes.NewCipher(key[:h])
	if err != nil {
		return nil, err
	}
	k2, err := aes.NewCipher(key[h:])
	if err != nil {
		return nil, err
	}
	return &Cipher{k1: k1, k2: k2, fast: newRoundKeys(key[:h]), fast2: newRoundKeys(key[h:])}, nil
}

// Wipe overwrites the expanded round keys the cipher holds in its own memory.
// (The crypto/aes schedules cannot be reached; they go with the garbage
// collector.) The cipher must not be used afterwards.
func (c *Cipher) Wipe() {
	for _, rk := range []*roundKeys{c.fast, c.fast2} {
		if rk != nil {
			clear(rk.enc[:])
			clear(rk.dec[:])
		}
	}
	c.k1, c.k2, c.fast, c.fast2 = nil, nil, nil, nil
}

// Encrypt encrypts len(src) bytes, which must be a whole number of sectors of
// sectorSize bytes, into dst. dst may be src, but must not overlap it
// otherwise (that panics, as in golang.org/x/crypto/xts). The first sector's IV is iv;
// each following sector's IV is larger by ivStep (dm-crypt counts 512-byte
// units, so ivStep is sectorSize/512 there).
func (c *Cipher) Encrypt(dst, src []byte, sectorSize int, iv, ivStep uint64) {
	c.crypt(dst, src, sectorSize, iv, ivStep, true)
}

// Decrypt is the inverse of Encrypt.
func (c *Cipher) Decrypt(dst, src []byte, sectorSize int, iv, ivStep uint64) {
	c.crypt(dst, src, sectorSize, iv, ivStep, false)
}

func (c *Cipher) crypt(dst, src []byte, sectorSize int, iv, ivStep uint64, enc bool) {
	if sectorSize <= 0 || sectorSize%16 != 0 || len(src)%sectorSize != 0 || len(dst) < len(src) {
		panic("xts: input is not a whole number of sectors")
	}
	if inexactOverlap(dst[:len(src)], src) {
		panic("xts: invalid buffer overlap")
	}
	if c.fast != nil && c.fast2 != nil && sectorSize%128 == 0 {
		c.cryptBatched(dst, src, sectorSize, iv, ivStep, enc)
		return
	}
	var tweak [16]byte
	for off := 0; off < len(src); off += sectorSize {
		clear(tweak[:])
		binary.LittleEndian.PutUint64(tweak[:8], iv)
		c.k2.Encrypt(tweak[:], tweak[:])
		d, s := dst[off:off+sectorSize], src[off:off+sectorSize]
		n := 0
		if c.fast != nil && sectorSize >= 128 {
			n = sectorSize / 128 * 128
			c.fast.crypt(d[:n], s[:n], &tweak, enc)
		}
		c.generic(d[n:], s[n:], &tweak, enc)
		iv += ivStep
	}
}

// generic handles blocks one at a time with crypto/aes.
func (c *Cipher) generic(dst, src []byte, tweak *[16]byte, enc bool) {
	t0 := binary.LittleEndian.Uint64(tweak[:8])
	t1 := binary.LittleEndian.Uint64(tweak[8:])
	var b [16]byte
	for i := 0; i < len(src); i += 16 {
		binary.LittleEndian.PutUint64(b[:8], binary.LittleEndian.Uint64(src[i:])^t0)
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(src[i+8:])^t1)
		if enc {
			c.k1.Encrypt(b[:], b[:])
		} else {
			c.k1.Decrypt(b[:], b[:])
		}
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(b[:8])^t0)
		binary.LittleEndian.PutUint64(dst[i+8:], binary.LittleEndian.Uint64(b[8:])^t1)
		// Multiply the tweak by x in GF(2^128) (little-endian convention).
		carry := t1 >> 63
		t1 = t1<<1 | t0>>63
		t0 = t0<<1 ^ (0x87 & -carry)
	}
	binary.LittleEndian.PutUint64(tweak[:8], t0)
	binary.LittleEndian.PutUint64(tweak[8:], t1)
}

// cryptBatched is crypt for the assembly path with whole batches of eight
// blocks per sector: the sector tweaks are made eight at a time. With VAES
// and sectors of a whole number of 256 bytes, cryptWide does it instead.
func (c *Cipher) cryptBatched(dst, src []byte, sectorSize int, iv, ivStep uint64, enc bool) {
	if c.fast.wide(sectorSize) {
		c.cryptWide(dst, src, sectorSize, iv, ivStep, enc)
		return
	}
	var ivs, tweaks [128]byte
	n := len(src) / sectorSize
	for s0 := 0; s0 < n; s0 += 8 {
		k := min(8, n-s0)
		clear(ivs[:])
		for i := 0; i < k; i++ {
			binary.LittleEndian.PutUint64(ivs[16*i:], iv+uint64(s0+i)*ivStep)
		}
		c.fast2.tweaks8(&tweaks, &ivs)
		for i := 0; i < k; i++ {
			off := (s0 + i) * sectorSize
			t := (*[16]byte)(tweaks[16*i : 16*i+16])
			c.fast.crypt(dst[off:off+sectorSize], src[off:off+sectorSize], t, enc)
		}
	}
	clear(tweaks[:])
}

// cryptWide makes the tweaks of 32 sectors at once and hands the 32
// sectors to the VAES kernel in one call.
func (c *Cipher) cryptWide(dst, src []byte, sectorSize int, iv, ivStep uint64, enc bool) {
	var tweaks [32 * 16]byte
	n := len(src) / sectorSize
	for s0 := 0; s0 < n; s0 += 32 {
		k := min(32, n-s0)
		clear(tweaks[:])
		for i := 0; i < k; i++ {
			binary.LittleEndian.PutUint64(tweaks[16*i:], iv+uint64(s0+i)*ivStep)
		}
		c.fast2.tweaks32(&tweaks)
		off, end := s0*sectorSize, (s0+k)*sectorSize
		c.fast.cryptSectors(dst[off:end], src[off:end], sectorSize, tweaks[:16*k], enc)
	}
	clear(tweaks[:])
}

// inexactOverlap reports whether x and y share memory other than at the
// same index, as golang.org/x/crypto/internal/alias.InexactOverlap: the
// output would overwrite input not yet read.
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}
	return uintptr(unsafe.Pointer(&x[0])) <= uintptr(unsafe.Pointer(&y[len(y)-1])) &&
		uintptr(unsafe.Pointer(&y[0])) <= uintptr(unsafe.Pointer(&x[len(x)-1]))
}
