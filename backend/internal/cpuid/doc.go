// Package cpuid reads the x86 CPUID instruction (amd64 only), for the
// features golang.org/x/sys/cpu does not report: the SHA extensions
// (sha256x2) and VEX-encoded VAES and VPCLMULQDQ without AVX-512 (the XTS
// kernels). It is itself assembly, so with the purego build tag it is
// empty, as are the assembly paths of those packages that use it.
package cpuid
