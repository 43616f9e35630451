//go:build !purego

package xts

import (
	"golang.org/x/sys/cpu"

	"keyholder/backend/internal/cpuid"
)

//go:noescape
func xtsEncAsm(rk *byte, nr int, dst, src *byte, nblocks int, tweak *[16]byte)

//go:noescape
func xtsDecAsm(rk *byte, nr int, dst, src *byte, nblocks int, tweak *[16]byte)

// expandKeyAsm writes the encryption and decryption schedules of a 16-byte
// (nr = 10) or 32-byte (nr = 14) key with AESKEYGENASSIST and AESIMC: no
// table lookup indexed by key bytes.
//
//go:noescape
func expandKeyAsm(nr int, key, enc, dec *byte)

// The AES-NI kernels and the key expansion are in xts_amd64.s, written by
// gen_aesni.go; the VAES kernels and their helpers in xts_vaes_amd64.s,
// written by gen_vaes.go.
//go:generate go run gen_aesni.go
//go:generate go run gen_vaes.go

//go:noescape
func xtsEncVAES(rk *byte, nr int, dst, src *byte, sectorBlocks, nsectors int, tweaks *byte)

//go:noescape
func xtsDecVAES(rk *byte, nr int, dst, src *byte, sectorBlocks, nsectors int, tweaks *byte)

//go:noescape
func xtsEncVAES512(rk *byte, nr int, dst, src *byte, sectorBlocks, nsectors int, tweaks *byte)

//go:noescape
func xtsDecVAES512(rk *byte, nr int, dst, src *byte, sectorBlocks, nsectors int, tweaks *byte)

//go:noescape
func ecbEncVAES(rk *byte, nr int, dst, src *byte, nblocks int)

//go:noescape
func ecbEncVAES512(rk *byte, nr int, dst, src *byte, nblocks int)

//go:noescape
func ecbEnc8(rk *byte, nr int, dst, src *byte)

const haveBatch = true

// tweaks8 encrypts eight IV blocks with the tweak key.
func (rk *roundKeys) tweaks8(dst, src *[128]byte) { ecbEnc8(&rk.enc[0], rk.nr, &dst[0], &src[0]) }

var haveAESNI = cpu.X86.HasAES && cpu.X86.HasSSE41

// haveVAES reports VEX-encoded VAES and VPCLMULQDQ on YMM registers, which
// golang.org/x/sys/cpu only reports together with AVX-512: CPUID leaf 7
// ECX bits 9 and 10, read directly. HasAVX2 implies that leaf 7 exists and
// that the OS saves the YMM state.
var haveVAES = haveAESNI && cpu.X86.HasAVX2 && cpu.X86.HasPCLMULQDQ && leaf7ecx()&(1<<9|1<<10) == 1<<9|1<<10

func leaf7ecx() uint32 {
	_, c := cpuid.Leaf7()
	return c
}

// haveVAES512 reports the AVX-512 forms of VAES and VPCLMULQDQ (and the
// AVX512BW byte shifts the ZMM kernel uses).
var haveVAES512 = haveVAES && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VAES && cpu.X86.HasAVX512VPCLMULQDQ

// isAMD reports an AMD CPU ("AuthenticAMD"). The ZMM kernel is the default
// only there: it was measured on Zen 4, which runs 512-bit operations as
// two 256-bit halves at full clock, while several Intel AVX-512 parts lower
// their clock for 512-bit work.
func isAMD() bool { return cpuid.IsAMD() }

// vaesKernel selects the kernel for whole runs of sixteen blocks: 512
// (ZMM), 256 (YMM) or 0 (none: everything goes to the AES-NI kernel). It is
// the package-level switch tests use to run each kernel.
var vaesKernel = defaultKernel()

func defaultKernel() int {
	switch {
	case haveVAES512 && isAMD():
		return 512
	case haveVAES:
		return 256
	}
	return 0
}

func newRoundKeys(key []byte) *roundKeys {
	if !haveAESNI {
		return nil
	}
	if len(key) != 16 && len(key) != 32 {
		panic("xts: AES key must be 16 or 32 bytes")
	}
	rk := &roundKeys{nr: len(key)/4 + 6}
	expandKeyAsm(rk.nr, &key[0], &rk.enc[0], &rk.dec[0])
	return rk
}

// crypt handles a multiple of 128 bytes (eight blocks) and advances tweak:
// whole runs of 256 bytes with the VAES kernel if there is one, the rest
// with the AES-NI kernel.
func (rk *roundKeys) crypt(dst, src []byte, tweak *[16]byte, enc bool) {
	if vaesKernel != 0 && len(src) >= 256 {
		n := len(src) &^ 255
		rk.vaes(dst, src, n, 1, tweak[:], enc)
		dst, src = dst[n:], src[n:]
	}
	if len(src) == 0 {
		return
	}
	if enc {
		xtsEncAsm(&rk.enc[0], rk.nr, &dst[0], &src[0], len(src)/16, tweak)
	} else {
		xtsDecAsm(&rk.dec[0], rk.nr, &dst[0], &src[0], len(src)/16, tweak)
	}
}

// wide reports whether sectors of sectorSize bytes go to the VAES kernel
// whole, through tweaks32 and cryptSectors.
func (rk *roundKeys) wide(sectorSize int) bool { return vaesKernel != 0 && sectorSize%256 == 0 }

// tweaks32 encrypts 32 IV blocks in place with the tweak key, with VAES.
func (rk *roundKeys) tweaks32(b *[512]byte) {
	if vaesKernel == 512 {
		ecbEncVAES512(&rk.enc[0], rk.nr, &b[0], &b[0], 32)
	} else {
		ecbEncVAES(&rk.enc[0], rk.nr, &b[0], &b[0], 32)
	}
}

// cryptSectors handles len(tweaks)/16 whole sectors of sectorSize bytes
// (when wide(sectorSize)), sector i with the tweak at tweaks[16*i:], which
// it overwrites, in one call of the VAES kernel.
func (rk *roundKeys) cryptSectors(dst, src []byte, sectorSize int, tweaks []byte, enc bool) {
	rk.vaes(dst, src, sectorSize, len(tweaks)/16, tweaks, enc)
}

// vaes runs the VAES kernel over nsectors sectors of size bytes (a
// multiple of 256) with their tweaks; each tweak is advanced past its sector.
func (rk *roundKeys) vaes(dst, src []byte, size, nsectors int, tweaks []byte, enc bool) {
	if nsectors == 0 {
		return
	}
	_, _, _ = dst[size*nsectors-1], src[size*nsectors-1], tweaks[16*nsectors-1]
	switch {
	case vaesKernel == 512 && enc:
		xtsEncVAES512(&rk.enc[0], rk.nr, &dst[0], &src[0], size/16, nsectors, &tweaks[0])
	case vaesKernel == 512:
		xtsDecVAES512(&rk.dec[0], rk.nr, &dst[0], &src[0], size/16, nsectors, &tweaks[0])
	case enc:
		xtsEncVAES(&rk.enc[0], rk.nr, &dst[0], &src[0], size/16, nsectors, &tweaks[0])
	default:
		xtsDecVAES(&rk.dec[0], rk.nr, &dst[0], &src[0], size/16, nsectors, &tweaks[0])
	}
}
