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
// "keyholder-challenge-mac-v1" 0 console_id). It is derived when the
// service is unlocked and wiped when it is locked, so it is never on disk
// and lives in memory no longer than the master key it comes from; every
// console process that has unlocked the same database derives the same
// key, so each accepts the challenges the others issued. A locked console
// issues and accepts no challenges, which costs nothing: it could not
// release a key either.
func (s *Service) ChallengeMAC(msg []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.challengeKey == nil {
		return nil, ErrLocked
	}
	m := hmac.New(sha256.New, s.challengeKey)
	m.Write(msg)
	return m.Sum(nil), nil
}

// challengeKey derives the challenge key; the caller wipes it.
func challengeKey(master []byte, consoleID string) []byte {
	return subkey(master, infoChallenge+"\x00"+consoleID)
}
