package app

import (
	"crypto/rand"

	"keyholder/backend/shamir"
)

// SplitPassphrase splits a volume's recovery passphrase into n printable
// shares, any m of which give it back (`keyholder shares combine`), so no
// single person can open the disk without Keyholder. The wizard shows the
// shares instead of the passphrase; nothing is stored.
func (i *Images) SplitPassphrase(c Caller, passphrase string, m, n int) ([]string, error) {
	if _, err := i.session.requireOfficer(c); err != nil {
		return nil, err
	}
	if m < 2 || n < m || n > 16 {
		return nil, &Error{Code: CodeInvalid, Message: "choose between 2 and 16 shares, with a threshold of at least 2 and at most the number of shares"}
	}
	if len(passphrase) < 8 || len(passphrase) > 255 {
		return nil, &Error{Code: CodeInvalid, Message: "the recovery passphrase must be 8 to 255 bytes"}
	}
	secret := []byte(passphrase)
	defer clear(secret)
	var set [4]byte
	rand.Read(set[:])
	shares, err := shamir.Split(secret, m, n, set, rand.Reader)
	if err != nil {
		return nil, toError(i.log, "split the recovery passphrase", err)
	}
	out := make([]string, len(shares))
	for k, s := range shares {
		out[k] = s.String()
	}
	return out, nil
}
