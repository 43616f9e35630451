package xts

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"
)

func aesNew(k []byte) (cipher.Block, error) { return aes.NewCipher(k) }

func haveFast() bool { return newRoundKeys(make([]byte, 32)) != nil }

// paths names the implementations this machine can run, fastest first:
// "vaes" (sixteen blocks in YMM registers), "aesni" (eight blocks in XMM
// registers) and "generic" (crypto/aes, one block at a time).
func paths() []string {
	var p []string
	if haveVAES512 {
		p = append(p, "vaes512")
	}
	if haveVAES {
		p = append(p, "vaes256")
	}
	if haveFast() {
		p = append(p, "aesni")
	}
	return append(p, "generic")
}

// setPath makes c use implementation name until the test ends. The choice
// between the assembly kernels is the package-level vaesKernel, so tests
// that call it must not run in parallel.
func setPath(t testing.TB, c *Cipher, name string) {
	old := vaesKernel
	t.Cleanup(func() { vaesKernel = old })
	switch name {
	case "vaes512":
		if !haveVAES512 {
			t.Fatal("no AVX-512 VAES on this machine")
		}
		vaesKernel = 512
	case "vaes256":
		if !haveVAES {
			t.Fatal("no VAES on this machine")
		}
		vaesKernel = 256
	case "aesni":
		vaesKernel = 0
	case "generic":
		c.fast, c.fast2 = nil, nil
	default:
		t.Fatalf("unknown path %q", name)
	}
}
