package shamir

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestFieldVectors(t *testing.T) {
	// FIPS-197 section 4.2 and the AES S-box inverse of 0x53.
	for _, c := range []struct{ a, b, want byte }{
		{0x57, 0x83, 0xc1}, {0x57, 0x13, 0xfe}, {0x53, 0xca, 0x01}, {0x00, 0x37, 0x00}, {0x01, 0xff, 0xff},
	} {
		if got := mul(c.a, c.b); got != c.want {
			t.Errorf("mul(%#x, %#x) = %#x, want %#x", c.a, c.b, got, c.want)
		}
	}
	if got := inv(0x53); got != 0xca {
		t.Errorf("inv(0x53) = %#x, want 0xca", got)
	}
	for a := 1; a < 256; a++ {
		if mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("a * inv(a) != 1 for a = %#x", a)
		}
	}
}

func TestSplitVector(t *testing.T) {
	// Secret 0x2a, M=2, the random coefficient 0x01: f(x) = 0x2a + x.
	shares, err := Split([]byte{0x2a}, 2, 3, [4]byte{1, 2, 3, 4}, bytes.NewReader([]byte{0x01}))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []byte{0x2b, 0x28, 0x29} {
		if shares[i].Value[0] != want || shares[i].X != i+1 {
			t.Errorf("share %d = %#x, want %#x", i+1, shares[i].Value[0], want)
		}
	}
	// The text form is pinned: a change of format must be deliberate.
	if got, want := shares[0].String(), "KHS1-AEAQE-AYEAI-AQCK3-POFT2-A"; got != want {
		t.Errorf("text form = %s, want %s", got, want)
	}
}

func TestCombineEverySubset(t *testing.T) {
	secret := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 8)
	shares, err := Split(secret, 3, 5, [4]byte{9}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for mask := 0; mask < 1<<5; mask++ {
		var sub []Share
		for i := 0; i < 5; i++ {
			if mask&(1<<i) != 0 {
				sub = append(sub, shares[i])
			}
		}
		got, err := Combine(sub)
		switch {
		case len(sub) < 3:
			if !errors.Is(err, ErrTooFewShares) {
				t.Errorf("%d shares: err = %v, want ErrTooFewShares", len(sub), err)
			}
		case err != nil || !bytes.Equal(got, secret):
			t.Errorf("subset %05b: %x, %v", mask, got, err)
		}
	}
}

func TestCombineErrors(t *testing.T) {
	a, _ := Split([]byte("0123456789abcdef"), 2, 3, [4]byte{1}, nil)
	b, _ := Split([]byte("0123456789abcdef"), 2, 3, [4]byte{2}, nil)
	for _, c := range []struct {
		name   string
		shares []Share
		want   error
	}{
		{"none", nil, ErrTooFewShares},
		{"one of two", a[:1], ErrTooFewShares},
		{"two splits", []Share{a[0], b[1]}, ErrMismatch},
		{"same share twice", []Share{a[1], a[1]}, ErrDuplicate},
	} {
		if _, err := Combine(c.shares); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	for _, c := range []struct{ m, n, size int }{{1, 3, 8}, {4, 3, 8}, {2, 256, 8}, {2, 3, 0}, {2, 3, MaxSecret + 1}} {
		if _, err := Split(make([]byte, c.size), c.m, c.n, [4]byte{}, nil); !errors.Is(err, ErrParams) {
			t.Errorf("Split(M=%d, N=%d, %d bytes): err = %v, want ErrParams", c.m, c.n, c.size, err)
		}
	}
}

func TestParseRoundTripAndTypos(t *testing.T) {
	shares, _ := Split(bytes.Repeat([]byte{7}, 32), 2, 2, [4]byte{5, 6, 7, 8}, nil)
	text := shares[1].String()
	got, err := Parse(strings.ToLower(strings.ReplaceAll(text, "-", " ")))
	if err != nil || got.X != 2 || got.Threshold != 2 || !bytes.Equal(got.Value, shares[1].Value) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// Every single-character substitution is caught.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := len(prefix); i < len(text); i++ {
		if text[i] == '-' {
			continue
		}
		for _, r := range alphabet {
			if byte(r) == text[i] {
				continue
			}
			typo := text[:i] + string(r) + text[i+1:]
			if _, err := Parse(typo); err == nil {
				t.Fatalf("typo at %d (%c) not detected", i, r)
			}
		}
	}
	// A dropped character is caught too.
	for i := len(prefix); i < len(text); i++ {
		if _, err := Parse(text[:i] + text[i+1:]); err == nil && text[i] != '-' {
			t.Fatalf("dropped character %d not detected", i)
		}
	}
	for _, c := range []struct {
		text string
		want error
	}{
		{"", ErrFormat},
		{"hello world", ErrFormat},
		{"KHS1-%%%%", ErrFormat},
		{"KHS1-AAAA", ErrChecksum},
		{strings.Repeat("A", 2000), ErrFormat},
	} {
		if _, err := Parse(c.text); !errors.Is(err, c.want) {
			t.Errorf("Parse(%.20q): err = %v, want %v", c.text, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	shares, _ := Split([]byte("a fuzzing seed secret, 32 bytes!"), 2, 3, [4]byte{1, 2, 3, 4}, nil)
	f.Add(shares[0].String())
	f.Add("KHS1-AEAQE-AYEAI-AQCK3-POFT2-A")
	f.Add("khs1 aaaaa")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(text)
		if err != nil {
			return
		}
		again, err := Parse(s.String())
		if err != nil || again.X != s.X || again.Threshold != s.Threshold || again.Set != s.Set || !bytes.Equal(again.Value, s.Value) {
			t.Fatalf("a parsed share does not round-trip: %v", err)
		}
	})
}
