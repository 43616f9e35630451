package sim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
)

// stream is a deterministic byte stream: SHA-512(label ‖ 0x00 ‖ counter)
// blocks. It stands in for a random source wherever the simulation must
// give the same bytes in every process.
type stream struct {
	label []byte
	ctr   uint64
	buf   []byte
}

func newStream(parts ...string) *stream {
	var l []byte
	for i, p := range parts {
		if i > 0 {
			l = append(l, 0)
		}
		l = append(l, p...)
	}
	return &stream{label: l}
}

func (s *stream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(s.buf) == 0 {
			h := sha512.New()
			h.Write(s.label)
			var c [9]byte
			binary.BigEndian.PutUint64(c[1:], s.ctr)
			h.Write(c[:])
			s.ctr++
			s.buf = h.Sum(nil)
		}
		k := copy(p[n:], s.buf)
		s.buf = s.buf[k:]
		n += k
	}
	return n, nil
}

var smallPrimes = func() []uint64 {
	var ps []uint64
	for p := uint64(3); p < 1<<15; p += 2 {
		prime := true
		for _, q := range ps {
			if q*q > p {
				break
			}
			if p%q == 0 {
				prime = false
				break
			}
		}
		if prime {
			ps = append(ps, p)
		}
	}
	return ps
}()

// prime returns the first probable prime at or above a random odd bits-bit
// start with the top two bits set, sieving by small primes first.
func prime(r io.Reader, bits int) *big.Int {
	b := make([]byte, bits/8)
	r.Read(b)
	b[0] |= 0xC0
	b[len(b)-1] |= 1
	start := new(big.Int).SetBytes(b)
	mods := make([]uint64, len(smallPrimes))
	var m, q big.Int
	for i, p := range smallPrimes {
		mods[i] = m.Mod(start, q.SetUint64(p)).Uint64()
	}
	var c, d big.Int
	for delta := uint64(0); ; delta += 2 {
		ok := true
		for i, p := range smallPrimes {
			if (mods[i]+delta)%p == 0 {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		c.Add(start, d.SetUint64(delta))
		if c.ProbablyPrime(20) {
			return new(big.Int).Set(&c)
		}
	}
}

// deriveRSA makes an RSA key with e = 65537 deterministically from label.
// crypto/rsa.GenerateKey ignores its reader since Go 1.26, hence our own.
func deriveRSA(bits int, label string) (*rsa.PrivateKey, error) {
	r := newStream("keyholder sim rsa", label)
	e := big.NewInt(65537)
	one := big.NewInt(1)
	for {
		p := prime(r, bits/2)
		q := prime(r, bits/2)
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}, D: d, Primes: []*big.Int{p, q}}
		k.Precompute()
		if err := k.Validate(); err != nil {
			return nil, err
		}
		return k, nil
	}
}

// deriveP384 makes an ECDSA P-384 key deterministically from label.
func deriveP384(label string) (*ecdsa.PrivateKey, error) {
	r := newStream("keyholder sim p384", label)
	nMinus1 := new(big.Int).Sub(elliptic.P384().Params().N, big.NewInt(1))
	b := make([]byte, 64)
	for i := 0; i < 16; i++ {
		r.Read(b)
		d := new(big.Int).Mod(new(big.Int).SetBytes(b), nMinus1)
		d.Add(d, big.NewInt(1))
		raw := make([]byte, 48)
		d.FillBytes(raw)
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P384(), raw); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("derive P-384 key: no valid scalar")
}

// pssSigner signs with RSA-PSS using a salt drawn from a stream keyed by the
// digest, so certificates come out byte-identical in every process.
type pssSigner struct{ k *rsa.PrivateKey }

func (s pssSigner) Public() crypto.PublicKey { return &s.k.PublicKey }

func (s pssSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	salt := newStream("keyholder sim pss salt", string(digest))
	if po, ok := opts.(*rsa.PSSOptions); ok {
		return rsa.SignPSS(salt, s.k, po.HashFunc(), digest, po)
	}
	return nil, errors.New("simulated AMD keys sign only with RSA-PSS")
}
