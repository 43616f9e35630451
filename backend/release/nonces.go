package release

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"sync"
	"time"

	"keyholder/backend/release/wire"
)

// Nonce errors.
var (
	// ErrNonceUnknown means the nonce was never issued by this console
	// process, was used already, or expired. The three are not told apart on
	// the wire: the remedy is the same (ask for a new challenge).
	ErrNonceUnknown = errors.New("nonce unknown, used or expired")
	// ErrTooManyNonces means too many challenges are outstanding.
	ErrTooManyNonces = errors.New("too many outstanding challenges")
)

// Nonces issues single-use challenge nonces.
//
// Nonces live in memory only. A console restart forgets every outstanding
// nonce, so a guest that fetched one before the restart is told
// nonce_unknown and simply asks again; nothing issued before a restart can be
// replayed after it. A nonce is consumed by its first use whatever the
// outcome of the request, so a refused request cannot be retried with the
// same evidence.
type Nonces struct {
	mu   sync.Mutex
	m    map[[32]byte]nonceEntry
	ttl  time.Duration
	max  int
	now  func() time.Time
	next time.Time // next sweep of expired entries
}

type nonceEntry struct {
	nonce   [wire.NonceSize]byte
	expires time.Time
}

// NewNonces returns a nonce issuer whose nonces expire after ttl (zero: 60
// s) and which keeps at most max outstanding (zero: 200,000). now may be nil.
func NewNonces(ttl time.Duration, max int, now func() time.Time) *Nonces {
	if ttl <= 0 {
		ttl = 60 * time.Second
	}
	if max <= 0 {
		max = 200_000
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{m: map[[32]byte]nonceEntry{}, ttl: ttl, max: max, now: now}
}

// Issue makes a fresh nonce and returns it with its expiry.
func (n *Nonces) Issue() ([]byte, time.Time, error) {
	var e nonceEntry
	rand.Read(e.nonce[:])
	now := n.now()
	e.expires = now.Add(n.ttl)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sweepLocked(now)
	if len(n.m) >= n.max {
		return nil, time.Time{}, ErrTooManyNonces
	}
	// The map is keyed by a hash of the nonce, so lookup timing depends on
	// the hash, not on how many leading bytes of a guess are right.
	n.m[sha256.Sum256(e.nonce[:])] = e
	return append([]byte(nil), e.nonce[:]...), e.expires, nil
}

// Consume checks that nonce was issued, is unused and unexpired, and uses it
// up. Every call with an issued nonce removes it, even when it has expired.
func (n *Nonces) Consume(nonce []byte) error {
	if len(nonce) != wire.NonceSize {
		return ErrNonceUnknown
	}
	key := sha256.Sum256(nonce)
	now := n.now()
	n.mu.Lock()
	e, ok := n.m[key]
	if ok {
		delete(n.m, key)
	}
	n.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare(e.nonce[:], nonce) != 1 || !now.Before(e.expires) {
		return ErrNonceUnknown
	}
	return nil
}

// Outstanding is the number of nonces issued and not yet used or swept.
func (n *Nonces) Outstanding() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.m)
}

func (n *Nonces) sweepLocked(now time.Time) {
	if now.Before(n.next) && len(n.m) < n.max {
		return
	}
	for k, e := range n.m {
		if !now.Before(e.expires) {
			delete(n.m, k)
		}
	}
	n.next = now.Add(n.ttl / 4)
}
