package custody

import (
	"crypto/hmac"
	"crypto/sha256"
)

// infoChallenge is the HKDF label of the key that MACs release challenges.
const infoChallenge = "keyholder-challenge-mac-v1"

// ChallengeMAC returns HMAC-SHA256 over msg under the console's challenge
// key, or ErrLocked while the service is locked.
//
// The challenge key is HKDF-SHA256(master key, info
// "keyholder-challenge-mac-v1" 0 console_id). It is derived for each call
// and wiped after it, so it is never on disk and lives in memory no longer
// than the master key it comes from; every console process that has
// unlocked the same database derives the same key, so each accepts the
// challenges the others issued. A locked console issues and accepts no
// challenges, which costs nothing: it could not release a key either.
func (s *Service) ChallengeMAC(msg []byte) ([]byte, error) {
	var sum []byte
	err := s.withMaster(func(master []byte, consoleID string) error {
		k := subkey(master, infoChallenge+"\x00"+consoleID)
		defer clear(k)
		m := hmac.New(sha256.New, k)
		m.Write(msg)
		sum = m.Sum(nil)
		return nil
	})
	return sum, err
}
