//go:build ignore

// gen_aesni writes xts_amd64.s, the AES-NI code of the package:
//
//	go run gen_aesni.go
//
// It holds the eight-block XTS kernels for both directions, the eight-block
// ECB encryption of sector tweaks and the key expansion. The key expansion
// uses AESKEYGENASSIST, whose S-box lookup is done by the CPU in constant
// time (a table lookup indexed by key bytes would leak them through the
// cache), and AESIMC for the decryption schedule.
package main

import (
	"bytes"
	"fmt"
	"os"
)

var b bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&b, "\t"+format+"\n", args...) }
func label(format string, args ...any) {
	fmt.Fprintf(&b, format+":\n", args...)
}

// xtsKernel is xtsEncAsm or xtsDecAsm: X0-X7 hold the blocks, X8 the
// current round key, X9 the running tweak, X10 the GF(2^128) reduction
// mask, X11 round key 0, X12 scratch; the eight tweaks of a batch wait on
// the stack until the blocks come out of the rounds.
func xtsKernel(name, op string) {
	fmt.Fprintf(&b, "\n// func %s(rk *byte, nr int, dst, src *byte, nblocks int, tweak *[16]byte)\n", name)
	fmt.Fprintf(&b, "TEXT ·%s(SB), NOSPLIT, $128-48\n", name)
	p("MOVQ rk+0(FP), AX")
	p("MOVQ nr+8(FP), CX")
	p("MOVQ dst+16(FP), DI")
	p("MOVQ src+24(FP), SI")
	p("MOVQ nblocks+32(FP), DX")
	p("MOVQ tweak+40(FP), BX")
	p("MOVOU (BX), X9")
	p("MOVOU gfmask<>(SB), X10")
	p("MOVOU (AX), X11")
	label("loop")
	p("CMPQ DX, $8")
	p("JB done")
	for j := 0; j < 8; j++ {
		p("MOVOU X9, %d(SP)", 16*j)
		p("MOVOU %d(SI), X%d", 16*j, j)
		p("PXOR X9, X%d", j)
		p("PXOR X11, X%d", j)
		p("GFMUL")
	}
	p("LEAQ 16(AX), R8")
	p("MOVQ CX, R9")
	p("DECQ R9")
	label("rounds")
	p("MOVOU (R8), X8")
	for j := 0; j < 8; j++ {
		p("AES%s X8, X%d", op, j)
	}
	p("ADDQ $16, R8")
	p("DECQ R9")
	p("JNZ rounds")
	p("MOVOU (R8), X8")
	for j := 0; j < 8; j++ {
		p("AES%sLAST X8, X%d", op, j)
	}
	for j := 0; j < 8; j++ {
		p("MOVOU %d(SP), X12", 16*j)
		p("PXOR X12, X%d", j)
		p("MOVOU X%d, %d(DI)", j, 16*j)
	}
	p("ADDQ $128, SI")
	p("ADDQ $128, DI")
	p("SUBQ $8, DX")
	p("JMP loop")
	label("done")
	p("MOVOU X9, (BX)")
	p("RET")
}

// ecbEnc8 encrypts eight blocks (no chaining): the tweaks of eight sectors
// at once.
func ecbEnc8() {
	b.WriteString("\n// func ecbEnc8(rk *byte, nr int, dst, src *byte)\n")
	b.WriteString("// Encrypts eight blocks (no chaining): the tweaks of eight sectors at once.\n")
	b.WriteString("TEXT ·ecbEnc8(SB), NOSPLIT, $0-32\n")
	p("MOVQ rk+0(FP), AX")
	p("MOVQ nr+8(FP), CX")
	p("MOVQ dst+16(FP), DI")
	p("MOVQ src+24(FP), SI")
	p("MOVOU (AX), X8")
	for j := 0; j < 8; j++ {
		p("MOVOU %d(SI), X%d", 16*j, j)
		p("PXOR X8, X%d", j)
	}
	p("LEAQ 16(AX), R8")
	p("MOVQ CX, R9")
	p("DECQ R9")
	label("ecbrounds")
	p("MOVOU (R8), X8")
	for j := 0; j < 8; j++ {
		p("AESENC X8, X%d", j)
	}
	p("ADDQ $16, R8")
	p("DECQ R9")
	p("JNZ ecbrounds")
	p("MOVOU (R8), X8")
	for j := 0; j < 8; j++ {
		p("AESENCLAST X8, X%d", j)
		p("MOVOU X%d, %d(DI)", j, 16*j)
	}
	p("RET")
}

// expandKey is expandKeyAsm: the FIPS-197 key expansion of a 16-byte
// (nr = 10) or 32-byte (nr = 14) key into enc (round key i at 16i), and the
// equivalent inverse cipher's keys into dec (dec[0] = enc[nr], AESIMC of
// the middle ones in reverse order, dec[nr] = enc[0]), fully unrolled (the
// round constants are immediates of AESKEYGENASSIST). X0 and X3 hold the
// last two round keys, X1 the AESKEYGENASSIST result, X2 scratch. The
// registers that held key material are cleared before returning.
func expandKey() {
	b.WriteString("\n// func expandKeyAsm(nr int, key, enc, dec *byte)\n")
	b.WriteString("TEXT ·expandKeyAsm(SB), NOSPLIT, $0-32\n")
	p("MOVQ nr+0(FP), CX")
	p("MOVQ key+8(FP), AX")
	p("MOVQ enc+16(FP), BX")
	p("MOVQ dec+24(FP), DX")
	p("MOVOU (AX), X0")
	p("MOVOU X0, (BX)")
	p("CMPQ CX, $10")
	p("JNE expand256")
	rcon := []int{0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36}
	// next sets x = x ^ x<<32 ^ x<<64 ^ x<<96 ^ X1: each word of the new
	// round key is the word before it xor the word nk back.
	next := func(x string) {
		p("MOVO %s, X2", x)
		for i := 0; i < 3; i++ {
			p("PSLLO $4, X2")
			p("PXOR X2, %s", x)
		}
		p("PXOR X1, %s", x)
	}
	for i := 1; i <= 10; i++ {
		// X1 = RotWord(SubWord(w3)) ^ rcon in every word.
		p("AESKEYGENASSIST $%#02x, X0, X1", rcon[i-1])
		p("PSHUFD $0xff, X1, X1")
		next("X0")
		p("MOVOU X0, %d(BX)", 16*i)
	}
	decKeys(10)
	label("expand256")
	p("MOVOU 16(AX), X3")
	p("MOVOU X3, 16(BX)")
	for i := 1; i <= 7; i++ {
		p("AESKEYGENASSIST $%#02x, X3, X1", rcon[i-1])
		p("PSHUFD $0xff, X1, X1")
		next("X0")
		p("MOVOU X0, %d(BX)", 32*i)
		if i == 7 {
			break
		}
		// X1 = SubWord(w3) (no rotation, no round constant) in every word.
		p("AESKEYGENASSIST $0x00, X0, X1")
		p("PSHUFD $0xaa, X1, X1")
		next("X3")
		p("MOVOU X3, %d(BX)", 32*i+16)
	}
	decKeys(14)
}

// decKeys writes the decryption schedule for nr rounds, clears the
// registers and returns.
func decKeys(nr int) {
	p("MOVOU %d(BX), X1", 16*nr)
	p("MOVOU X1, (DX)")
	for i := 1; i < nr; i++ {
		p("MOVOU %d(BX), X1", 16*(nr-i))
		p("AESIMC X1, X1")
		p("MOVOU X1, %d(DX)", 16*i)
	}
	p("MOVOU (BX), X1")
	p("MOVOU X1, %d(DX)", 16*nr)
	for _, x := range []string{"X0", "X1", "X2", "X3"} {
		p("PXOR %s, %s", x, x)
	}
	p("RET")
}

func main() {
	b.WriteString(`// Code generated by gen_aesni.go; DO NOT EDIT.

//go:build amd64 && !purego

#include "textflag.h"

// Eight-block AES-XTS with AES-NI, ECB encryption of eight sector tweaks,
// and the AES key expansion. See gen_aesni.go for the register plans and
// xts.go for the contract.

DATA gfmask<>+0(SB)/8, $0x87
DATA gfmask<>+8(SB)/8, $1
GLOBL gfmask<>(SB), RODATA|NOPTR, $16

// GFMUL multiplies the tweak in X9 by x (as Linux's _aesni_gf128mul_x_ble).
#define GFMUL \
	PSHUFD $0x13, X9, X12; \
	PADDQ X9, X9; \
	PSRAL $31, X12; \
	PAND X10, X12; \
	PXOR X12, X9
`)
	xtsKernel("xtsEncAsm", "ENC")
	xtsKernel("xtsDecAsm", "DEC")
	ecbEnc8()
	expandKey()
	if err := os.WriteFile("xts_amd64.s", b.Bytes(), 0o644); err != nil {
		panic(err)
	}
}
