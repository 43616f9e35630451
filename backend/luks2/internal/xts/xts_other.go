//go:build !amd64 || purego

package xts

func newRoundKeys(key []byte) *roundKeys { return nil }

func (rk *roundKeys) crypt(dst, src []byte, tweak *[16]byte, enc bool) {
	panic("xts: no assembly on this platform")
}

const haveBatch = false

func (rk *roundKeys) tweaks8(dst, src *[128]byte) { panic("xts: no assembly on this platform") }

// There is no VAES kernel off amd64; the variables exist for the tests.
var (
	haveVAES, haveVAES512 = false, false
	vaesKernel            = 0
)

func (rk *roundKeys) wide(sectorSize int) bool { return false }

func (rk *roundKeys) tweaks32(b *[512]byte) { panic("xts: no assembly on this platform") }

func (rk *roundKeys) cryptSectors(dst, src []byte, sectorSize int, tweaks []byte, enc bool) {
	panic("xts: no assembly on this platform")
}
