// Package sha256x2 hashes two streams with SHA-256 on one core at once.
//
// Image preparation hashes the source image and the encrypted output side
// by side, in chunks of the same length. One SHA-256 stream on SHA-NI is
// bound by latency, not throughput: the 64 rounds of a block are 32
// SHA256RNDS2 instructions, each needing the state the previous one
// produced, so the core mostly waits on that one dependency chain
// (crypto/sha256, like OpenSSL, does about 1.78 GB/s per stream on the
// development machine, an AMD EPYC Zen 4). Two independent streams have
// two chains: WriteBoth runs both through one assembly kernel that
// alternates four rounds of the first stream with four rounds of the
// second, and out-of-order execution overlaps them.
//
// Measured there on one core (go test -bench . -cpu 1, medians of
// several runs on a shared machine): crypto/sha256 1.77 GB/s for one
// stream; WriteBoth 3.35-3.47 GB/s for both streams together, counted
// in thread CPU time 3.54 GB/s, about 1.95 times as much work per core.
// Digest.Write of one stream uses a one-stream kernel and matches
// crypto/sha256 (1.77 GB/s).
//
// The kernels (block_amd64.s, written by gen.go) need SHA-NI, SSE4.1,
// SSSE3 and AVX. Without them, on other architectures and with the
// purego build tag, a Digest wraps crypto/sha256 and WriteBoth writes the
// streams one after the other.
package sha256x2

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// Size is the size of a SHA-256 checksum in bytes.
const Size = 32

// BlockSize is the block size of SHA-256 in bytes.
const BlockSize = 64

// useKernel turns the amd64 kernels off when false (tests force the
// fallback with it). It takes effect on New and Reset.
var useKernel = true

var iv = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// Digest is a SHA-256 hash.Hash. On amd64 with SHA-NI it keeps its own
// state and hashes with this package's kernels; elsewhere it wraps
// crypto/sha256. The zero value is ready to use, as is New().
type Digest struct {
	h    [8]uint32
	x    [BlockSize]byte
	nx   int
	len  uint64
	fb   hash.Hash // crypto/sha256, when the kernels are not in use
	init bool
}

var _ hash.Hash = (*Digest)(nil)

// New returns a new SHA-256 Digest.
func New() *Digest {
	d := new(Digest)
	d.Reset()
	return d
}

// Reset resets the Digest to its initial state.
func (d *Digest) Reset() {
	d.init = true
	if !(useKernel && hasKernel) {
		if d.fb == nil {
			d.fb = sha256.New()
		} else {
			d.fb.Reset()
		}
		return
	}
	d.fb = nil
	d.h = iv
	d.nx = 0
	d.len = 0
}

// Size returns the number of bytes Sum appends: 32.
func (d *Digest) Size() int { return Size }

// BlockSize returns SHA-256's block size: 64.
func (d *Digest) BlockSize() int { return BlockSize }

// Write adds p to the hash. It never returns an error.
func (d *Digest) Write(p []byte) (int, error) {
	if !d.init {
		d.Reset()
	}
	n := len(p)
	if d.fb != nil {
		// In pieces, as the kernels go: crypto/sha256's assembly cannot be
		// preempted either.
		for len(p) > 0 {
			k := min(len(p), chunkBlocks*BlockSize)
			d.fb.Write(p[:k])
			p = p[k:]
		}
		return n, nil
	}
	d.len += uint64(n)
	if d.nx > 0 {
		c := copy(d.x[d.nx:], p)
		d.nx += c
		p = p[c:]
		if d.nx < BlockSize {
			return n, nil
		}
		blocks(&d.h, d.x[:])
		d.nx = 0
	}
	if m := len(p) &^ (BlockSize - 1); m > 0 {
		blocks(&d.h, p[:m])
		p = p[m:]
	}
	d.nx = copy(d.x[:], p)
	return n, nil
}

// Sum appends the hash of everything written so far to b and returns the
// result. It does not change the Digest.
func (d *Digest) Sum(b []byte) []byte {
	if !d.init {
		d.Reset()
	}
	if d.fb != nil {
		return d.fb.Sum(b)
	}
	c := *d
	var pad [BlockSize + 8]byte
	pad[0] = 0x80
	n := BlockSize + 56 - int(c.len%BlockSize)
	if n > BlockSize {
		n -= BlockSize
	}
	binary.BigEndian.PutUint64(pad[n:], c.len<<3)
	c.Write(pad[:n+8])
	if c.nx != 0 {
		panic("sha256x2: padding did not end on a block boundary")
	}
	for _, v := range c.h {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// WriteBoth writes pa to a and pb to b, as a.Write(pa); b.Write(pb) would.
// When pa and pb have the same length and a and b have the same number of
// bytes buffered (none, when both streams are at a block boundary), the
// whole blocks of both go through one two-stream kernel, which on one core
// runs close to twice as fast as hashing them one after the other. Any
// other case simply writes them one after the other.
func WriteBoth(a, b *Digest, pa, pb []byte) {
	if !a.init {
		a.Reset()
	}
	if !b.init {
		b.Reset()
	}
	if a == b || a.fb != nil || b.fb != nil || len(pa) != len(pb) || a.nx != b.nx {
		a.Write(pa)
		b.Write(pb)
		return
	}
	if a.nx > 0 {
		// Same buffered count, same length: both buffers fill alike.
		c := copy(a.x[a.nx:], pa)
		copy(b.x[b.nx:], pb)
		a.nx += c
		b.nx += c
		a.len += uint64(c)
		b.len += uint64(c)
		pa, pb = pa[c:], pb[c:]
		if a.nx < BlockSize {
			return
		}
		blocks2(&a.h, &b.h, a.x[:], b.x[:])
		a.nx, b.nx = 0, 0
	}
	if m := len(pa) &^ (BlockSize - 1); m > 0 {
		blocks2(&a.h, &b.h, pa[:m], pb[:m])
		a.len += uint64(m)
		b.len += uint64(m)
		pa, pb = pa[m:], pb[m:]
	}
	a.nx = copy(a.x[:], pa)
	b.nx = copy(b.x[:], pb)
	a.len += uint64(a.nx)
	b.len += uint64(b.nx)
}

// chunkBlocks bounds the blocks per kernel call (and per write to the
// crypto/sha256 fallback): assembly cannot be preempted, and 1024 blocks
// (of one or of both streams) take about 40 µs.
const chunkBlocks = 1024

// blocks2 hashes the whole blocks of pa into ha and of pb into hb;
// len(pa) == len(pb), a multiple of BlockSize.
func blocks2(ha, hb *[8]uint32, pa, pb []byte) {
	pb = pb[:len(pa)]
	for len(pa) >= BlockSize {
		n := min(len(pa)/BlockSize, chunkBlocks)
		block2(ha, hb, &pa[0], &pb[0], n)
		pa, pb = pa[n*BlockSize:], pb[n*BlockSize:]
	}
}

// blocks hashes the whole blocks of p into h. The single-stream kernel
// block1 is as fast as block2 with a scratch second lane on the same data
// (both are bound by one SHA256RNDS2 chain) and does half the work.
func blocks(h *[8]uint32, p []byte) {
	for len(p) >= BlockSize {
		n := min(len(p)/BlockSize, chunkBlocks)
		block1(h, &p[0], n)
		p = p[n*BlockSize:]
	}
}
