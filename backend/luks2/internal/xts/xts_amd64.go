package xts

import "golang.org/x/sys/cpu"

//go:noescape
func xtsEncAsm(rk *byte, nr int, dst, src *byte, nblocks int, tweak *[16]byte)

//go:noescape
func xtsDecAsm(rk *byte, nr int, dst, src *byte, nblocks int, tweak *[16]byte)

//go:noescape
func aesimc(dst, src *byte)

//go:noescape
func ecbEnc8(rk *byte, nr int, dst, src *byte)

const haveBatch = true

// tweaks8 encrypts eight IV blocks with the tweak key.
func (rk *roundKeys) tweaks8(dst, src *[128]byte) { ecbEnc8(&rk.enc[0], rk.nr, &dst[0], &src[0]) }

var haveAESNI = cpu.X86.HasAES && cpu.X86.HasSSE41

func newRoundKeys(key []byte) *roundKeys {
	if !haveAESNI {
		return nil
	}
	rk := new(roundKeys)
	expandKey(key, rk)
	nr := rk.nr
	copy(rk.dec[:16], rk.enc[16*nr:16*nr+16])
	for i := 1; i < nr; i++ {
		aesimc(&rk.dec[16*i], &rk.enc[16*(nr-i)])
	}
	copy(rk.dec[16*nr:16*nr+16], rk.enc[:16])
	return rk
}

// crypt handles a multiple of 128 bytes (eight blocks) and advances tweak.
func (rk *roundKeys) crypt(dst, src []byte, tweak *[16]byte, enc bool) {
	if len(src) == 0 {
		return
	}
	if enc {
		xtsEncAsm(&rk.enc[0], rk.nr, &dst[0], &src[0], len(src)/16, tweak)
	} else {
		xtsDecAsm(&rk.dec[0], rk.nr, &dst[0], &src[0], len(src)/16, tweak)
	}
}
