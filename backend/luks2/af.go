package luks2

import (
	"crypto/rand"
	"encoding/binary"
	"hash"
)

// afSplit spreads key over stripes blocks of len(key) bytes (the LUKS1
// anti-forensic splitter): all but the last block are random, the last is
// key XOR the diffusion of their running XOR.
func afSplit(key []byte, stripes int, newHash func() hash.Hash) ([]byte, error) {
	n := len(key)
	out := make([]byte, n*stripes)
	d := make([]byte, n)
	if _, err := rand.Read(out[:n*(stripes-1)]); err != nil {
		return nil, err
	}
	for i := 0; i < stripes-1; i++ {
		xorInto(d, out[i*n:(i+1)*n])
		diffuse(d, newHash)
	}
	last := out[(stripes-1)*n:]
	for j := range last {
		last[j] = d[j] ^ key[j]
	}
	clear(d)
	return out, nil
}

// afMerge inverts afSplit into key (len(key) bytes).
func afMerge(key, material []byte, stripes int, newHash func() hash.Hash) {
	n := len(key)
	clear(key)
	for i := 0; i < stripes-1; i++ {
		xorInto(key, material[i*n:(i+1)*n])
		diffuse(key, newHash)
	}
	xorInto(key, material[(stripes-1)*n:stripes*n])
}

func xorInto(dst, src []byte) {
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// diffuse hashes b in place, digest-sized piece by piece, each piece
// prefixed with its big-endian 32-bit index.
func diffuse(b []byte, newHash func() hash.Hash) {
	h := newHash()
	ds := h.Size()
	var iv [4]byte
	var sum [64]byte
	for i := 0; i*ds < len(b); i++ {
		p := b[i*ds : min(len(b), (i+1)*ds)]
		h.Reset()
		binary.BigEndian.PutUint32(iv[:], uint32(i))
		h.Write(iv[:])
		h.Write(p)
		copy(p, h.Sum(sum[:0]))
	}
	clear(sum[:])
}
