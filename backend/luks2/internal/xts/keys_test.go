package xts

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
)

// This file holds the key schedules to a textbook FIPS-197 implementation
// written here with tables (fine in a test: no secret), and the schedules'
// ciphers to crypto/aes.

// refSbox is the S-box made the textbook way: p runs through the
// multiplicative group by powers of 3 while q runs through the inverses.
var refSbox, refInvSbox = func() (s, inv [256]byte) {
	p, q := byte(1), byte(1)
	for {
		hi := p & 0x80
		p ^= p << 1
		if hi != 0 {
			p ^= 0x1b
		}
		q ^= q << 1
		q ^= q << 2
		q ^= q << 4
		if q&0x80 != 0 {
			q ^= 0x09
		}
		x := q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^ rotl8(q, 4)
		s[p] = x ^ 0x63
		if p == 1 {
			break
		}
	}
	s[0] = 0x63
	for i := range s {
		inv[s[i]] = byte(i)
	}
	return s, inv
}()

// refMul is multiplication in GF(2^8) the schoolbook way, with branches.
func refMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		if a&0x80 != 0 {
			a = a<<1 ^ 0x1b
		} else {
			a <<= 1
		}
		b >>= 1
	}
	return p
}

// refExpand is FIPS-197 §5.2 with refSbox, and §5.3.5 for the equivalent
// inverse cipher.
func refExpand(key []byte) (enc, dec []byte) {
	nk := len(key) / 4
	nr := nk + 6
	w := make([]byte, 16*(nr+1))
	copy(w, key)
	rcon := byte(1)
	for i := nk; i < 4*(nr+1); i++ {
		t := append([]byte(nil), w[4*(i-1):4*i]...)
		if i%nk == 0 {
			t = []byte{refSbox[t[1]] ^ rcon, refSbox[t[2]], refSbox[t[3]], refSbox[t[0]]}
			rcon = refMul(rcon, 2)
		} else if nk > 6 && i%nk == 4 {
			for j := range t {
				t[j] = refSbox[t[j]]
			}
		}
		for j := 0; j < 4; j++ {
			w[4*i+j] = w[4*(i-nk)+j] ^ t[j]
		}
	}
	dec = make([]byte, len(w))
	for r := 0; r <= nr; r++ {
		copy(dec[16*r:], w[16*(nr-r):16*(nr-r+1)])
		if r > 0 && r < nr {
			refInvMix(dec[16*r : 16*r+16])
		}
	}
	return w, dec
}

func refInvMix(s []byte) {
	for c := 0; c < 16; c += 4 {
		a := [4]byte{s[c], s[c+1], s[c+2], s[c+3]}
		for r := 0; r < 4; r++ {
			s[c+r] = refMul(a[r], 14) ^ refMul(a[(r+1)%4], 11) ^ refMul(a[(r+2)%4], 13) ^ refMul(a[(r+3)%4], 9)
		}
	}
}

func refMix(s []byte) {
	for c := 0; c < 16; c += 4 {
		a := [4]byte{s[c], s[c+1], s[c+2], s[c+3]}
		for r := 0; r < 4; r++ {
			s[c+r] = refMul(a[r], 2) ^ refMul(a[(r+1)%4], 3) ^ a[(r+2)%4] ^ a[(r+3)%4]
		}
	}
}

// refCipher encrypts (with enc round keys) or decrypts (with the
// equivalent inverse cipher's keys) one block, as FIPS-197 §5.1 and §5.3.5.
func refCipher(rk []byte, nr int, block []byte, encrypt bool) []byte {
	s := make([]byte, 16)
	for i := range s {
		s[i] = block[i] ^ rk[i]
	}
	t := make([]byte, 16)
	for r := 1; r <= nr; r++ {
		for c := 0; c < 4; c++ {
			for row := 0; row < 4; row++ {
				if encrypt { // SubBytes and ShiftRows
					t[4*c+row] = refSbox[s[4*((c+row)%4)+row]]
				} else { // InvSubBytes and InvShiftRows
					t[4*c+row] = refInvSbox[s[4*((c-row+4)%4)+row]]
				}
			}
		}
		copy(s, t)
		if r < nr {
			if encrypt {
				refMix(s)
			} else {
				refInvMix(s)
			}
		}
		for i := range s {
			s[i] ^= rk[16*r+i]
		}
	}
	return s
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReferenceAES holds the test's own reference to FIPS-197: the S-box
// values of §5.1.1, the last round key of the expansions in Appendix A.1
// and A.3, and the cipher examples of Appendix C.1 and C.3.
func TestReferenceAES(t *testing.T) {
	if refSbox[0x00] != 0x63 || refSbox[0x53] != 0xed || refSbox[0xff] != 0x16 {
		t.Fatalf("S-box: %#x %#x %#x", refSbox[0x00], refSbox[0x53], refSbox[0xff])
	}
	for _, c := range []struct{ key, last, pt, ct string }{
		{"2b7e151628aed2a6abf7158809cf4f3c", "d014f9a8c9ee2589e13f0cc8b6630ca6", "", ""},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", "fe4890d1e6188d0b046df344706c631e", "", ""},
		{"000102030405060708090a0b0c0d0e0f", "", "00112233445566778899aabbccddeeff", "69c4e0d86a7b0430d8cdb78070b4c55a"},
		{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "", "00112233445566778899aabbccddeeff", "8ea2b7ca516745bfeafc49904b496089"},
	} {
		key := unhex(t, c.key)
		enc, dec := refExpand(key)
		nr := len(key)/4 + 6
		if c.last != "" && !bytes.Equal(enc[16*nr:], unhex(t, c.last)) {
			t.Fatalf("key %s: last round key %x, want %s", c.key, enc[16*nr:], c.last)
		}
		if c.pt == "" {
			continue
		}
		if got := refCipher(enc, nr, unhex(t, c.pt), true); !bytes.Equal(got, unhex(t, c.ct)) {
			t.Fatalf("key %s: ciphertext %x, want %s", c.key, got, c.ct)
		}
		if got := refCipher(dec, nr, unhex(t, c.ct), false); !bytes.Equal(got, unhex(t, c.pt)) {
			t.Fatalf("key %s: plaintext %x, want %s", c.key, got, c.pt)
		}
	}
}

// TestSubByte: the computed S-box is the table one at every input.
func TestSubByte(t *testing.T) {
	for x := 0; x < 256; x++ {
		if got := subByte(byte(x)); got != refSbox[x] {
			t.Fatalf("subByte(%#x) = %#x, want %#x", x, got, refSbox[x])
		}
	}
}

// schedules returns the schedules this build makes for key: the Go one
// always, the assembly one (AESKEYGENASSIST) where there is AES-NI.
func schedules(key []byte) map[string]*roundKeys {
	m := map[string]*roundKeys{"go": new(roundKeys)}
	expandKeyGeneric(key, m["go"])
	if rk := newRoundKeys(key); rk != nil {
		m["asm"] = rk
	}
	return m
}

func testKeys(n int) [][]byte {
	var keys [][]byte
	for _, size := range []int{16, 32} {
		keys = append(keys, make([]byte, size), bytes.Repeat([]byte{0xff}, size))
		for i := 0; i < n; i++ {
			k := make([]byte, size)
			rand.Read(k)
			keys = append(keys, k)
		}
	}
	return keys
}

// checkSchedule compares rk with the reference expansion of key.
func checkSchedule(t testing.TB, name string, key []byte, rk *roundKeys) {
	t.Helper()
	enc, dec := refExpand(key)
	if nr := len(key)/4 + 6; rk.nr != nr {
		t.Fatalf("%s schedule, %d-byte key: %d rounds, want %d", name, len(key), rk.nr, nr)
	}
	if !bytes.Equal(rk.enc[:len(enc)], enc) {
		t.Fatalf("%s schedule, key %x: round keys\n%x, want\n%x", name, key, rk.enc[:len(enc)], enc)
	}
	if !bytes.Equal(rk.dec[:len(dec)], dec) {
		t.Fatalf("%s schedule, key %x: decryption round keys\n%x, want\n%x", name, key, rk.dec[:len(dec)], dec)
	}
	if !bytes.Equal(rk.enc[len(enc):], make([]byte, 240-len(enc))) || !bytes.Equal(rk.dec[len(dec):], make([]byte, 240-len(dec))) {
		t.Fatalf("%s schedule, key %x: wrote past the last round key", name, key)
	}
}

// TestKeySchedules: both schedules (Go, and AESKEYGENASSIST where this
// machine has AES-NI) give the FIPS-197 round keys for encryption and the
// equivalent inverse cipher, for AES-128 and AES-256 keys.
func TestKeySchedules(t *testing.T) {
	for _, key := range testKeys(300) {
		for name, rk := range schedules(key) {
			checkSchedule(t, name, key, rk)
		}
	}
}

// TestSchedulesEncryptLikeCryptoAES: blocks enciphered with each schedule
// (through the test's FIPS-197 cipher, and through the AES-NI and VAES
// kernels where they run) are those crypto/aes makes with the same key, in
// both directions.
func TestSchedulesEncryptLikeCryptoAES(t *testing.T) {
	for _, key := range testKeys(40) {
		for name, rk := range schedules(key) {
			checkCipher(t, name, key, rk, nil)
		}
	}
}

// checkCipher encrypts and decrypts 32 blocks (random, or data repeated)
// with rk and with crypto/aes.
func checkCipher(t testing.TB, name string, key []byte, rk *roundKeys, data []byte) {
	t.Helper()
	ref, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	pt := make([]byte, 16*n)
	if len(data) == 0 {
		rand.Read(pt)
	} else {
		for i := range pt {
			pt[i] = data[i%len(data)] + byte(i/len(data))
		}
	}
	want := make([]byte, len(pt))
	for i := 0; i < len(pt); i += 16 {
		ref.Encrypt(want[i:i+16], pt[i:i+16])
	}
	what := fmt.Sprintf("%s schedule, %d-byte key %x", name, len(key), key)
	for i := 0; i < len(pt); i += 16 {
		if got := refCipher(rk.enc[:], rk.nr, pt[i:i+16], true); !bytes.Equal(got, want[i:i+16]) {
			t.Fatalf("%s, FIPS-197 cipher: block %d encrypts to %x, crypto/aes says %x", what, i/16, got, want[i:i+16])
		}
		if got := refCipher(rk.dec[:], rk.nr, want[i:i+16], false); !bytes.Equal(got, pt[i:i+16]) {
			t.Fatalf("%s, FIPS-197 cipher: block %d decrypts to %x, want %x", what, i/16, got, pt[i:i+16])
		}
	}
	if !haveFast() {
		return
	}
	// A zero tweak stays zero (0·x = 0), so XTS with it is plain AES on
	// every block: 128 bytes go to the AES-NI kernel, 512 to the VAES one
	// where there is VAES.
	for _, size := range []int{128, 512} {
		var zero [16]byte
		got := make([]byte, size)
		rk.crypt(got, pt[:size], &zero, true)
		if i := firstDiff(got, want[:size]); i >= 0 {
			t.Fatalf("%s, %d bytes through the kernels: block %d differs from crypto/aes", what, size, i/16)
		}
		rk.crypt(got, got, &zero, false)
		if i := firstDiff(got, pt[:size]); i >= 0 {
			t.Fatalf("%s, %d bytes through the kernels: block %d does not decrypt", what, size, i/16)
		}
	}
}

// FuzzKeySchedule holds both schedules to the FIPS-197 reference and to
// crypto/aes for arbitrary keys (cut or zero-padded to 16 or 32 bytes) and
// blocks.
func FuzzKeySchedule(f *testing.F) {
	f.Add(make([]byte, 16), []byte{0})
	f.Add(bytes.Repeat([]byte{0xff}, 32), []byte("block"))
	f.Add([]byte("\x2b\x7e\x15\x16\x28\xae\xd2\xa6\xab\xf7\x15\x88\x09\xcf\x4f\x3c"), []byte("\x32\x43\xf6\xa8\x88\x5a\x30\x8d\x31\x31\x98\xa2\xe0\x37\x07\x34"))
	f.Fuzz(func(t *testing.T, key, data []byte) {
		n := 32
		if len(key) <= 16 {
			n = 16
		}
		key = append(key[:min(len(key), n):min(len(key), n)], make([]byte, max(0, n-len(key)))...)
		if len(data) == 0 {
			data = []byte{0}
		}
		for name, rk := range schedules(key) {
			checkSchedule(t, name, key, rk)
			checkCipher(t, name, key, rk, data)
		}
	})
}

// BenchmarkKeySchedule measures each schedule of an AES-256 key.
func BenchmarkKeySchedule(b *testing.B) {
	key := make([]byte, 32)
	b.Run("go", func(b *testing.B) {
		var rk roundKeys
		for b.Loop() {
			expandKeyGeneric(key, &rk)
		}
	})
	if haveFast() {
		b.Run("asm", func(b *testing.B) {
			for b.Loop() {
				newRoundKeys(key)
			}
		})
	}
}
