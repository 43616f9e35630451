//go:build !amd64 || purego

package sha256x2

// Without the amd64 kernels every Digest delegates to crypto/sha256.
const hasKernel = false

func block2(ha, hb *[8]uint32, pa, pb *byte, nblocks int) { panic("sha256x2: no kernel") }

func block1(h *[8]uint32, p *byte, nblocks int) { panic("sha256x2: no kernel") }
