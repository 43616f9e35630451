package xts

// roundKeys is an AES key schedule laid out as the AES-NI instructions want
// it: round key i at enc[16*i:], and the equivalent inverse cipher's keys in
// dec (dec[0] = enc[nr], InvMixColumns of the middle ones, dec[nr] = enc[0]).
type roundKeys struct {
	enc, dec [240]byte
	nr       int
}

// The kernels get their schedule from expandKeyAsm (AESKEYGENASSIST, see
// gen_aesni.go). expandKeyGeneric below is the same schedule in Go for
// machines without AES-NI. Both run in constant time: no branch and no
// memory index depends on the key. The S-box in particular is computed
// (inversion in GF(2^8) by a fixed chain of multiplications, then the
// affine map) rather than looked up in a table, whose cache lines would
// give key bytes away to a neighbour timing its own memory accesses.

// gmul returns a·b in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, in constant
// time.
func gmul(a, b byte) byte {
	var p byte
	for i := 0; i < 8; i++ {
		p ^= a & -(b & 1)
		b >>= 1
		a = a<<1 ^ 0x1b&-(a>>7)
	}
	return p
}

// subByte is the AES S-box (FIPS-197 §5.1.1) computed in constant time:
// x^254 (the inverse of x, and 0 for 0), then the affine map.
func subByte(x byte) byte {
	x2 := gmul(x, x)
	x3 := gmul(x2, x)
	x6 := gmul(x3, x3)
	x12 := gmul(x6, x6)
	x15 := gmul(x12, x3)
	x30 := gmul(x15, x15)
	x60 := gmul(x30, x30)
	x120 := gmul(x60, x60)
	x240 := gmul(x120, x120)
	x252 := gmul(x240, x12)
	inv := gmul(x252, x2)
	return inv ^ rotl8(inv, 1) ^ rotl8(inv, 2) ^ rotl8(inv, 3) ^ rotl8(inv, 4) ^ 0x63
}

func rotl8(x byte, n uint) byte { return x<<n | x>>(8-n) }

// expandKeyGeneric is the FIPS-197 §5.2 key expansion of a 16- or 32-byte
// key, bytes in memory order, and the equivalent inverse cipher's schedule
// (§5.3.5), in constant time.
func expandKeyGeneric(key []byte, rk *roundKeys) {
	if len(key) != 16 && len(key) != 32 {
		panic("xts: AES key must be 16 or 32 bytes")
	}
	nk := len(key) / 4
	rk.nr = nk + 6
	words := 4 * (rk.nr + 1)
	w := rk.enc[:4*words]
	copy(w, key)
	rcon := byte(1) // public: depends on the round only
	for i := nk; i < words; i++ {
		var t [4]byte
		copy(t[:], w[4*(i-1):4*i])
		if i%nk == 0 {
			t = [4]byte{subByte(t[1]) ^ rcon, subByte(t[2]), subByte(t[3]), subByte(t[0])}
			rcon = rcon<<1 ^ 0x1b&-(rcon>>7)
		} else if nk > 6 && i%nk == 4 {
			t = [4]byte{subByte(t[0]), subByte(t[1]), subByte(t[2]), subByte(t[3])}
		}
		for j := 0; j < 4; j++ {
			w[4*i+j] = w[4*(i-nk)+j] ^ t[j]
		}
	}
	nr := rk.nr
	copy(rk.dec[:16], rk.enc[16*nr:16*nr+16])
	for i := 1; i < nr; i++ {
		invMixColumns((*[16]byte)(rk.dec[16*i:]), (*[16]byte)(rk.enc[16*(nr-i):]))
	}
	copy(rk.dec[16*nr:16*nr+16], rk.enc[:16])
}

// invMixColumns sets dst to InvMixColumns of src (FIPS-197 §5.3.3), four
// columns of four bytes in memory order, as AESIMC does.
func invMixColumns(dst, src *[16]byte) {
	for c := 0; c < 16; c += 4 {
		a0, a1, a2, a3 := src[c], src[c+1], src[c+2], src[c+3]
		dst[c] = gmul(a0, 0x0e) ^ gmul(a1, 0x0b) ^ gmul(a2, 0x0d) ^ gmul(a3, 0x09)
		dst[c+1] = gmul(a0, 0x09) ^ gmul(a1, 0x0e) ^ gmul(a2, 0x0b) ^ gmul(a3, 0x0d)
		dst[c+2] = gmul(a0, 0x0d) ^ gmul(a1, 0x09) ^ gmul(a2, 0x0e) ^ gmul(a3, 0x0b)
		dst[c+3] = gmul(a0, 0x0b) ^ gmul(a1, 0x0d) ^ gmul(a2, 0x09) ^ gmul(a3, 0x0e)
	}
}
