package xts

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"
)

// TestInexactOverlapPanics: like golang.org/x/crypto/xts, Encrypt and
// Decrypt refuse a dst that overlaps src without starting at the same
// byte (the output would overwrite input not yet read), on every path,
// and leave both buffers as they were. Exact overlap (in place) and
// buffers that merely touch are fine.
func TestInexactOverlapPanics(t *testing.T) {
	key := make([]byte, 64)
	rand.Read(key)
	const sector, n = 512, 4 * 512
	for _, path := range paths() {
		for _, enc := range []bool{true, false} {
			// Shifts of dst against src, in bytes: forwards and backwards, by
			// less than a block, one block, one eight-block batch and one
			// sector less a block.
			for _, shift := range []int{1, 15, 16, 128, 256, sector - 16, -1, -16, -128, -(sector - 16)} {
				name := fmt.Sprintf("%s/enc=%v/shift=%d", path, enc, shift)
				buf := make([]byte, n+2*sector)
				rand.Read(buf)
				before := append([]byte(nil), buf...)
				base := sector
				src := buf[base : base+n]
				dst := buf[base+shift : base+shift+n]
				c, err := New(key)
				if err != nil {
					t.Fatal(err)
				}
				setPath(t, c, path)
				msg := catchPanic(func() {
					if enc {
						c.Encrypt(dst, src, sector, 7, 1)
					} else {
						c.Decrypt(dst, src, sector, 7, 1)
					}
				})
				if msg != "xts: invalid buffer overlap" {
					t.Fatalf("%s: panic %q, want \"xts: invalid buffer overlap\"", name, msg)
				}
				if !bytes.Equal(buf, before) {
					t.Fatalf("%s: buffers changed by a refused call", name)
				}
			}
		}
	}
}

// TestExactAndAdjacentBuffers: in place and back-to-back buffers work and
// give what separate buffers give.
func TestExactAndAdjacentBuffers(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	c, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	const sector, n = 512, 2 * 512
	src := make([]byte, n)
	rand.Read(src)
	want := make([]byte, n)
	c.Encrypt(want, src, sector, 3, 1)

	inPlace := append([]byte(nil), src...)
	if msg := catchPanic(func() { c.Encrypt(inPlace, inPlace, sector, 3, 1) }); msg != "" {
		t.Fatalf("in place: panic %q", msg)
	}
	if !bytes.Equal(inPlace, want) {
		t.Fatal("in place: wrong ciphertext")
	}
	// dst right after src, and right before it, in one array.
	for _, dstFirst := range []bool{false, true} {
		buf := make([]byte, 2*n)
		s, d := buf[:n], buf[n:]
		if dstFirst {
			s, d = d, s
		}
		copy(s, src)
		if msg := catchPanic(func() { c.Encrypt(d, s, sector, 3, 1) }); msg != "" {
			t.Fatalf("adjacent (dst first %v): panic %q", dstFirst, msg)
		}
		if !bytes.Equal(d, want) || !bytes.Equal(s, src) {
			t.Fatalf("adjacent (dst first %v): wrong result", dstFirst)
		}
	}
	// A longer dst whose tail overlaps nothing that is read: only
	// dst[:len(src)] counts, as in x/crypto/xts.
	buf := make([]byte, 2*n)
	copy(buf[n:], src)
	if msg := catchPanic(func() { c.Encrypt(buf[:2*n], buf[n:], sector, 3, 1) }); msg != "" {
		t.Fatalf("long dst: panic %q", msg)
	}
	if !bytes.Equal(buf[:n], want) {
		t.Fatal("long dst: wrong ciphertext")
	}
}

func catchPanic(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}
