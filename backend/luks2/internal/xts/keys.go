package xts

// roundKeys is an AES key schedule laid out as the AES-NI instructions want
// it: round key i at enc[16*i:], and the equivalent inverse cipher's keys in
// dec (dec[0] = enc[nr], InvMixColumns of the middle ones, dec[nr] = enc[0]).
type roundKeys struct {
	enc, dec [240]byte
	nr       int
}

var sbox [256]byte

func init() {
	// The S-box from the multiplicative inverse and the affine map
	// (FIPS-197 §5.1.1), computed instead of typed in.
	p, q := byte(1), byte(1)
	for {
		// p *= 3
		hi := p & 0x80
		p ^= p << 1
		if hi != 0 {
			p ^= 0x1b
		}
		// q /= 3
		q ^= q << 1
		q ^= q << 2
		q ^= q << 4
		if q&0x80 != 0 {
			q ^= 0x09
		}
		x := q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^ rotl8(q, 4)
		sbox[p] = x ^ 0x63
		if p == 1 {
			break
		}
	}
	sbox[0] = 0x63
}

func rotl8(x byte, n uint) byte { return x<<n | x>>(8-n) }

// expandKey is the FIPS-197 §5.2 key expansion, bytes in memory order.
func expandKey(key []byte, rk *roundKeys) {
	nk := len(key) / 4
	rk.nr = nk + 6
	words := 4 * (rk.nr + 1)
	w := rk.enc[:4*words]
	copy(w, key)
	rcon := byte(1)
	for i := nk; i < words; i++ {
		var t [4]byte
		copy(t[:], w[4*(i-1):4*i])
		if i%nk == 0 {
			t = [4]byte{sbox[t[1]] ^ rcon, sbox[t[2]], sbox[t[3]], sbox[t[0]]}
			hi := rcon & 0x80
			rcon <<= 1
			if hi != 0 {
				rcon ^= 0x1b
			}
		} else if nk > 6 && i%nk == 4 {
			t = [4]byte{sbox[t[0]], sbox[t[1]], sbox[t[2]], sbox[t[3]]}
		}
		for j := 0; j < 4; j++ {
			w[4*i+j] = w[4*(i-nk)+j] ^ t[j]
		}
	}
}
