//go:build purego

package xts

import "testing"

// With the purego build tag no assembly is built: every call goes to the
// crypto/aes path (the tests above then check that path alone).
func TestPuregoUsesNoAssembly(t *testing.T) {
	if haveFast() || haveVAES || haveVAES512 || vaesKernel != 0 {
		t.Fatalf("purego build has assembly: round keys %v, VAES %v/%v, kernel %d", haveFast(), haveVAES, haveVAES512, vaesKernel)
	}
	if p := paths(); len(p) != 1 || p[0] != "generic" {
		t.Fatalf("purego build offers paths %v", p)
	}
}
