package store

import (
	"context"
	"database/sql"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// lockKeyClass is the first half of the two-part advisory lock keys that
// TxKeyed takes ("kh" as a 32-bit number). Two-part keys live apart from
// the one-part keys of lockWriter and the named locks, so a hashed key
// never meets those.
const lockKeyClass = 0x6b68

// keyedTxKey marks a BeginTx context whose transaction is keyed.
type keyedTxKey struct{}

// keySet is the hashed keys of a keyed transaction.
type keySet []int32

// array is s as a PostgreSQL array literal.
func (s keySet) array() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(k), 10))
	}
	b.WriteByte('}')
	return b.String()
}

// lockKey hashes a key to the second half of its advisory lock key. Two
// keys that share a hash only wait for each other without need.
func lockKey(key string) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int32(h.Sum32())
}

// TxKeyed runs fn in one write transaction, like Tx, for a transaction
// whose writes (and the reads they depend on) concern only the things keys
// name: "vm:ID", "volume:ID" and the like, one string each. On SQLite it
// is Tx (write transactions are serial there). On PostgreSQL it takes,
// before fn runs, the writer lock shared and one advisory lock per key, so
// that it waits for every ordinary write transaction (and they for it) and
// for keyed transactions that name one of the same keys, but runs beside
// keyed transactions of other replicas on other keys. The caller must name
// every key whose rows fn writes, or reads to decide what to write.
func (db *DB) TxKeyed(ctx context.Context, keys []string, fn func(*sql.Tx) error) error {
	if db.dialect != Postgres {
		return db.Tx(ctx, fn)
	}
	ks := make(keySet, 0, len(keys))
	for _, k := range keys {
		ks = append(ks, lockKey(k))
	}
	slices.Sort(ks)
	ks = slices.Compact(ks)
	return db.Tx(context.WithValue(ctx, keyedTxKey{}, ks), fn)
}
