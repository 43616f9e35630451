//go:build !purego

package sha256x2

import (
	"golang.org/x/sys/cpu"

	"keyholder/backend/internal/cpuid"
)

//go:generate go run gen.go

// block2 runs nblocks 64-byte blocks of pa through the state ha and, at
// the same time, nblocks blocks of pb through hb. The two streams must not
// share a state.
//
//go:noescape
func block2(ha, hb *[8]uint32, pa, pb *byte, nblocks int)

// block1 runs nblocks 64-byte blocks of p through h.
//
//go:noescape
func block1(h *[8]uint32, p *byte, nblocks int)

// hasKernel reports whether the CPU has the instructions the kernels use.
// golang.org/x/sys/cpu has no flag for the SHA extensions: CPUID leaf 7
// reports them in EBX bit 29.
var hasKernel = cpu.X86.HasAVX && cpu.X86.HasSSE41 && cpu.X86.HasSSSE3 && hasSHA()

func hasSHA() bool {
	ebx, _ := cpuid.Leaf7()
	return ebx&(1<<29) != 0
}
