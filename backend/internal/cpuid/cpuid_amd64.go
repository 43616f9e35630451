//go:build !purego

package cpuid

// CPUID returns EAX, EBX, ECX and EDX of CPUID leaf with subleaf sub.
func CPUID(leaf, sub uint32) (a, b, c, d uint32)

// Leaf7 returns EBX and ECX of leaf 7 subleaf 0 (zero where the CPU has no
// leaf 7).
func Leaf7() (ebx, ecx uint32) {
	if maxLeaf, _, _, _ := CPUID(0, 0); maxLeaf < 7 {
		return 0, 0
	}
	_, ebx, ecx, _ = CPUID(7, 0)
	return ebx, ecx
}

// IsAMD reports an AMD processor ("AuthenticAMD").
func IsAMD() bool {
	_, b, c, d := CPUID(0, 0)
	return b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163
}
