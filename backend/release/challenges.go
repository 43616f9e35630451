package release

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"keyholder/backend/release/wire"
	"keyholder/backend/store"
)

// Challenge errors.
var (
	// ErrNonceUnknown means the nonce was not issued by a console holding
	// this database's master key, was used already, or expired. The three
	// are not told apart on the wire: the remedy is the same (ask for a new
	// challenge).
	ErrNonceUnknown = errors.New("nonce unknown, used or expired")
)

// ChallengeKey MACs challenges (*custody.Service implements it: the key is
// derived from the master key while the key service is unlocked).
type ChallengeKey interface {
	// ChallengeMAC returns HMAC-SHA256 of msg under the challenge key.
	ChallengeMAC(msg []byte) ([]byte, error)
}

// Challenge format (wire.NonceSize = 32 bytes, opaque to the agent):
//
//	[0]      version, 1
//	[1:5]    expiry, Unix seconds, big endian
//	[5:16]   11 random bytes
//	[16:32]  HMAC-SHA256(challenge key, "keyholder-challenge-v1" || bytes 0..15), first 16 bytes
//
// A challenge is checked without storage: its MAC (compared in constant
// time) and its expiry. Only a used challenge is stored, in
// consumed_challenges until it expires, so that storage grows with the
// requests the console serves, not with the challenges it hands out, and
// every console process on the database refuses a second use.
const (
	challengeVersion = 1
	challengeMACSize = 16
	challengeBody    = wire.NonceSize - challengeMACSize
	challengeDomain  = "keyholder-challenge-v1"
)

// Challenges issues and checks stateless challenges.
type Challenges struct {
	key ChallengeKey
	ttl time.Duration
	now func() time.Time

	// used is this process's record of the challenges it saw used, so that
	// a replay racing the first use is refused before its evidence costs a
	// verification; the database is the authority. It holds at most
	// maxUsed entries (a full table only skips the shortcut).
	mu      sync.Mutex
	used    map[[wire.NonceSize]byte]time.Time
	maxUsed int
	next    time.Time
}

// NewChallenges returns an issuer whose challenges are MACed by key and
// expire after ttl (zero: 60 s). now may be nil.
func NewChallenges(key ChallengeKey, ttl time.Duration, now func() time.Time) *Challenges {
	if ttl <= 0 {
		ttl = 60 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &Challenges{key: key, ttl: ttl, now: now, used: map[[wire.NonceSize]byte]time.Time{}, maxUsed: 200_000}
}

func challengeMAC(key ChallengeKey, body []byte) ([]byte, error) {
	msg := make([]byte, 0, len(challengeDomain)+challengeBody)
	msg = append(append(msg, challengeDomain...), body[:challengeBody]...)
	return key.ChallengeMAC(msg)
}

// Issue makes a fresh challenge and returns it with its expiry (whole
// seconds, rounded up). It fails while the key service is locked.
func (c *Challenges) Issue() ([]byte, time.Time, error) {
	exp := c.now().Add(c.ttl)
	secs := exp.Unix()
	if exp.Nanosecond() > 0 {
		secs++
	}
	n := make([]byte, wire.NonceSize)
	n[0] = challengeVersion
	binary.BigEndian.PutUint32(n[1:5], uint32(secs))
	rand.Read(n[5:challengeBody])
	mac, err := challengeMAC(c.key, n)
	if err != nil {
		return nil, time.Time{}, err
	}
	copy(n[challengeBody:], mac[:challengeMACSize])
	return n, time.Unix(secs, 0).UTC(), nil
}

// Check verifies nonce's MAC and expiry without storage and returns its
// expiry. It does not tell whether the nonce was used.
func (c *Challenges) Check(nonce []byte) (time.Time, error) {
	if len(nonce) != wire.NonceSize || nonce[0] != challengeVersion {
		return time.Time{}, ErrNonceUnknown
	}
	mac, err := challengeMAC(c.key, nonce)
	if err != nil {
		return time.Time{}, err
	}
	if subtle.ConstantTimeCompare(mac[:challengeMACSize], nonce[challengeBody:]) != 1 {
		return time.Time{}, ErrNonceUnknown
	}
	exp := time.Unix(int64(binary.BigEndian.Uint32(nonce[1:5])), 0).UTC()
	if !c.now().Before(exp) {
		return time.Time{}, ErrNonceUnknown
	}
	return exp, nil
}

// claim records a checked nonce as used in this process; false means this
// process saw it used already.
func (c *Challenges) claim(nonce []byte, exp time.Time) bool {
	var k [wire.NonceSize]byte
	copy(k[:], nonce)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.used[k]; ok {
		return false
	}
	if now.After(c.next) || len(c.used) >= c.maxUsed {
		for x, e := range c.used {
			if !now.Before(e) {
				delete(c.used, x)
			}
		}
		c.next = now.Add(c.ttl / 4)
	}
	if len(c.used) < c.maxUsed {
		c.used[k] = exp
	}
	return true
}

// usedLocally is the size of this process's record of used challenges.
func (c *Challenges) usedLocally() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.used)
}

// consumeTx records nonce as used in tx; false means it was used already
// (by this or another console process: the primary key refuses the row).
func consumeTx(ctx context.Context, tx *sql.Tx, nonce []byte, exp time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, consumeSQL, nonce, store.Time(exp))
	if err != nil {
		return false, fmt.Errorf("record used challenge: %w", store.Classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record used challenge: %w", store.Classify(err))
	}
	return n == 1, nil
}

// queueConsume queues consumeTx's statement in b; once b ran, *fresh says
// whether the nonce was unused.
func queueConsume(b *store.Batch, nonce []byte, exp time.Time, fresh *bool) {
	b.ExecThen(func(n int64) error {
		*fresh = n == 1
		return nil
	}, consumeSQL, nonce, store.Time(exp))
}

const consumeSQL = `INSERT INTO consumed_challenges(nonce, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING`

// SweepChallenges deletes the records of used challenges that have expired
// (their MAC check refuses them anyway) and returns how many it deleted.
func SweepChallenges(ctx context.Context, db *store.DB, now time.Time) (int64, error) {
	var n int64
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM consumed_challenges WHERE expires_at <= ?`, store.Time(now))
		if err != nil {
			return fmt.Errorf("sweep used challenges: %w", store.Classify(err))
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
