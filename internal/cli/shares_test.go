package cli

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"keyholder/backend/shamir"
)

func TestSharesCombine(t *testing.T) {
	secret := []byte("01234-56789-ABCDE-FGHJK-MNPQR-STVWX")
	shares, err := shamir.Split(secret, 2, 3, [4]byte{1, 2, 3, 4}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := func(i int) string { return shares[i].String() }
	typo := []byte(s(1))
	typo[10] ^= 0x01 // one character off
	cases := []struct {
		name, in, want, errSub string
	}{
		{"two of three", s(0) + "\n" + s(2) + "\n", string(secret), ""},
		{"comments and blank lines", "# shares of web-01\n\n" + s(1) + "\n  " + s(2) + "  \n", string(secret), ""},
		{"below the threshold", s(1) + "\n", "", "share"},
		{"a typo is caught", s(0) + "\n" + string(typo) + "\n", "", "line 2"},
		{"nothing", "\n\n", "", "no shares"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"shares", "combine"}, strings.NewReader(c.in), &out, &errb)
			if c.errSub == "" {
				if code != 0 || out.String() != c.want {
					t.Fatalf("code %d, out %q, err %q", code, out.String(), errb.String())
				}
				return
			}
			if code == 0 || out.Len() != 0 || !strings.Contains(errb.String(), c.errSub) {
				t.Fatalf("code %d, out %q, err %q; want an error with %q", code, out.String(), errb.String(), c.errSub)
			}
		})
	}
}
