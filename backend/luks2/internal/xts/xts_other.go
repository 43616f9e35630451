//go:build !amd64

package xts

func newRoundKeys(key []byte) *roundKeys { return nil }

func (rk *roundKeys) crypt(dst, src []byte, tweak *[16]byte, enc bool) {
	panic("xts: no assembly on this platform")
}

const haveBatch = false

func (rk *roundKeys) tweaks8(dst, src *[128]byte) { panic("xts: no assembly on this platform") }
