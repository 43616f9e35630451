package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// wipeableSigner stands in for custody's key: it can be wiped while
// registered, as a Lock racing an append would.
type wipeableSigner struct {
	mu   sync.Mutex
	priv ed25519.PrivateKey // nil once wiped
	pub  ed25519.PublicKey
}

func newSigner() *wipeableSigner {
	_, priv, _ := ed25519.GenerateKey(nil)
	return signerFrom(priv)
}

// signerFrom is the same key again, as custody unwraps it at each unlock.
func signerFrom(priv ed25519.PrivateKey) *wipeableSigner {
	return &wipeableSigner{priv: append(ed25519.PrivateKey{}, priv...), pub: priv.Public().(ed25519.PublicKey)}
}

func (s *wipeableSigner) PublicKey() ed25519.PublicKey { return s.pub }

func (s *wipeableSigner) Sign(msg []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.priv == nil {
		return nil, errors.New("wiped")
	}
	return ed25519.Sign(s.priv, msg), nil
}

func (s *wipeableSigner) wipe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.priv = nil
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), storetest.Location(t, t.TempDir()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func register(t *testing.T, l *Log, s Signer, every int64) func() {
	t.Helper()
	remove, err := l.SetSigner(s, every)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	return remove
}

func appendN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := l.AppendDB(context.Background(), Entry{Actor: "guest:vm1", Action: "heartbeat", Decision: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
}

func checkpointSeqs(t *testing.T, db *store.DB) []int64 {
	t.Helper()
	rows, err := db.Query(`SELECT seq FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := []int64{}
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func seqs(vs ...int64) []int64 { return append([]int64{}, vs...) }

func verifyOK(t *testing.T, db *store.DB, pub ed25519.PublicKey, entries, unsigned int64) {
	t.Helper()
	rep, err := Verify(context.Background(), db, pub)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Entries != entries || rep.Unsigned != unsigned {
		t.Fatalf("report = %+v, want %d entries, %d unsigned", rep, entries, unsigned)
	}
}

// Plain Appends, each in its own transaction, sign a checkpoint exactly at
// every Nth entry: 3N+5 entries give checkpoints at N, 2N and 3N (and, for
// N <= 5, at the multiples of N in the last five too).
func TestAppendCheckpointsEveryN(t *testing.T) {
	for _, n := range []int64{1, 2, 6, 64} {
		t.Run(fmt.Sprint("N=", n), func(t *testing.T) {
			l := NewLog(openDB(t))
			db := l.DB()
			s := newSigner()
			register(t, l, s, n)
			total := 3*n + 5
			appendN(t, l, int(total))
			var want []int64
			for k := n; k <= total; k += n {
				want = append(want, k)
			}
			if n > 5 && !reflect.DeepEqual(want, seqs(n, 2*n, 3*n)) {
				t.Fatalf("test expectation %v", want)
			}
			if got := checkpointSeqs(t, db); !reflect.DeepEqual(got, want) {
				t.Fatalf("checkpoints at %v, want %v", got, want)
			}
			verifyOK(t, db, s.pub, total, total%n)
		})
	}
}

// While no key is registered (locked) appends work and sign nothing; the
// first append after the key comes back catches up, and the rhythm
// restarts from there. A key wiped while still registered (Lock racing an
// append) also just skips the checkpoint.
func TestLockedAppendsCatchUp(t *testing.T) {
	const n = 4
	cases := []struct {
		name string
		lock func(remove func(), s *wipeableSigner)
	}{
		{"unregistered", func(remove func(), _ *wipeableSigner) { remove() }},
		{"wiped but registered", func(_ func(), s *wipeableSigner) { s.wipe() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := NewLog(openDB(t))
			db := l.DB()
			_, key, _ := ed25519.GenerateKey(nil)
			s := signerFrom(key)
			remove := register(t, l, s, n)
			appendN(t, l, 5) // checkpoint at 4
			c.lock(remove, s)
			appendN(t, l, 3*n) // 6..17: locked, nothing signed
			if got := checkpointSeqs(t, db); !reflect.DeepEqual(got, seqs(4)) {
				t.Fatalf("while locked: checkpoints at %v, want [4]", got)
			}
			verifyOK(t, db, s.pub, 17, 13)
			register(t, l, signerFrom(key), n) // unlocked again

			appendN(t, l, 1) // 18 catches up
			if got := checkpointSeqs(t, db); !reflect.DeepEqual(got, seqs(4, 18)) {
				t.Fatalf("after unlock: checkpoints at %v, want [4 18]", got)
			}
			appendN(t, l, n) // 19..22: the next at 22
			if got := checkpointSeqs(t, db); !reflect.DeepEqual(got, seqs(4, 18, 22)) {
				t.Fatalf("checkpoints at %v, want [4 18 22]", got)
			}
			verifyOK(t, db, s.pub, 22, 0)
		})
	}
}

// A checkpoint commits or rolls back with the entry that made it due: a
// rolled-back transaction, or a decision rolled back to its savepoint inside
// a group commit (as the release engine does), leaves none behind, and the
// next append that commits signs it.
func TestCheckpointRollsBackWithEntry(t *testing.T) {
	const n = 3
	boom := errors.New("decision failed")
	cases := []struct {
		name string
		run  func(ctx context.Context, l *Log) error
	}{
		{"transaction rolled back", func(ctx context.Context, l *Log) error {
			err := l.DB().Tx(ctx, func(tx *sql.Tx) error {
				if _, err := l.Append(ctx, tx, Entry{Actor: "guest:vm1", Action: "release"}); err != nil {
					return err
				}
				if got := countIn(t, tx); got != 1 {
					return fmt.Errorf("checkpoints inside the transaction = %d, want 1", got)
				}
				return boom
			})
			if !errors.Is(err, boom) {
				return fmt.Errorf("Tx = %v, want the decision's error", err)
			}
			return nil
		}},
		{"savepoint rolled back", func(ctx context.Context, l *Log) error {
			return l.DB().Tx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.Exec(`SAVEPOINT decision`); err != nil {
					return err
				}
				if _, err := l.Append(ctx, tx, Entry{Actor: "guest:vm1", Action: "release"}); err != nil {
					return err
				}
				if _, err := tx.Exec(`ROLLBACK TO decision`); err != nil {
					return err
				}
				if _, err := tx.Exec(`RELEASE decision`); err != nil {
					return err
				}
				if got := countIn(t, tx); got != 0 {
					return fmt.Errorf("checkpoints after ROLLBACK TO = %d, want 0", got)
				}
				return nil
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			l := NewLog(openDB(t))
			db := l.DB()
			s := newSigner()
			register(t, l, s, n)
			appendN(t, l, n-1)
			if err := c.run(ctx, l); err != nil {
				t.Fatal(err)
			}
			if got := checkpointSeqs(t, db); len(got) != 0 {
				t.Fatalf("checkpoints at %v after the rollback, want none", got)
			}
			verifyOK(t, db, s.pub, n-1, n-1)
			appendN(t, l, 1)
			if got := checkpointSeqs(t, db); !reflect.DeepEqual(got, seqs(n)) {
				t.Fatalf("checkpoints at %v, want [%d]", got, n)
			}
			verifyOK(t, db, s.pub, n, 0)
		})
	}
}

func countIn(t *testing.T, tx *sql.Tx) int {
	var c int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM audit_checkpoints`).Scan(&c); err != nil {
		t.Error(err)
	}
	return c
}

// Concurrent appenders (each append its own write transaction, serialised
// by SQLite) keep one valid chain with a checkpoint at exactly every Nth
// entry.
func TestConcurrentAppendsCheckpointEveryN(t *testing.T) {
	const n, writers, each = 7, 8, 25
	l := NewLog(openDB(t))
	db := l.DB()
	s := newSigner()
	register(t, l, s, n)
	appendConcurrently(t, l, writers, each)
	var want []int64
	for k := int64(n); k <= writers*each; k += n {
		want = append(want, k)
	}
	if got := checkpointSeqs(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("checkpoints at %v, want %v", got, want)
	}
	verifyOK(t, db, s.pub, writers*each, writers*each%n)
}

// appendConcurrently has writers goroutines append each entries apiece,
// every append in its own write transaction.
func appendConcurrently(t *testing.T, l *Log, writers, each int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := l.AppendDB(context.Background(), Entry{Actor: fmt.Sprintf("guest:vm%d", g), Action: "release", Decision: "allow"}); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Cutting the log back to before the newest checkpoint is named by Verify;
// cutting only the unsigned tail after it is not detectable (that tail is
// what Report.Unsigned counts, and what the package doc bounds by N).
func TestVerifyNamesTruncation(t *testing.T) {
	const n = 5 // 3N+2 = 17 entries, checkpoints at 5, 10, 15
	cases := []struct {
		name     string
		keepTo   int64 // entries after this are deleted
		wantSeq  int64 // 0: verifies
		unsigned int64
	}{
		{"nothing cut", 17, 0, 2},
		{"unsigned tail cut (undetectable)", 15, 0, 0},
		{"cut to just before the newest checkpoint", 14, 15, 0},
		{"cut to the previous checkpoint", 10, 11, 0},
		{"cut to the middle", 7, 8, 0},
		{"everything cut", 0, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := NewLog(openDB(t))
			db := l.DB()
			s := newSigner()
			register(t, l, s, n)
			appendN(t, l, 3*n+2)
			if _, err := db.Exec(`DELETE FROM audit_log WHERE seq > ?`, c.keepTo); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(context.Background(), db, s.pub)
			if c.wantSeq == 0 {
				if err != nil || rep.Entries != c.keepTo || rep.Unsigned != c.unsigned {
					t.Fatalf("Verify = %+v, %v; want it to pass with %d unsigned", rep, err, c.unsigned)
				}
				return
			}
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Seq != c.wantSeq || !strings.Contains(ve.Problem, "truncated") {
				t.Fatalf("Verify = %v, want entry %d named as truncated", err, c.wantSeq)
			}
		})
	}
}

// BenchmarkAppend measures what a signer in the log's slot adds to an
// append (reading the newest checkpoint, and every Nth time a signature), each append in its own transaction.
func BenchmarkAppend(b *testing.B) {
	for _, every := range []int64{0, 1 << 40, 64} {
		b.Run(fmt.Sprint("every=", every), func(b *testing.B) {
			ctx := context.Background()
			db, err := store.Open(ctx, storetest.Location(b, b.TempDir()), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			l := NewLog(db)
			if every > 0 { // 0: no signer; 1<<40: read the newest checkpoint, never sign
				remove, err := l.SetSigner(newSigner(), every)
				if err != nil {
					b.Fatal(err)
				}
				defer remove()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				err := db.Tx(ctx, func(tx *sql.Tx) error {
					// Several appends per transaction, as a group commit makes.
					for j := 0; j < 16; j++ {
						if _, err := l.Append(ctx, tx, Entry{Actor: "guest:vm1", Action: "heartbeat", Decision: "allow"}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The signer belongs to the Log it was set on, not to the database: a
// second Log over the same database (a tool working on a locked store)
// appends unsigned, and the next append through the Log with the signer
// catches up. Removing a signer that was replaced meanwhile (an old lock
// racing a new unlock) leaves the new one in the slot.
func TestSignerBelongsToItsLog(t *testing.T) {
	const n = 3
	signed := NewLog(openDB(t))
	db := signed.DB()
	plain := NewLog(db)
	_, key, _ := ed25519.GenerateKey(nil)
	s := signerFrom(key)
	removeOld := register(t, signed, s, n)
	appendN(t, plain, 2*n) // no signer in plain's slot
	if got := checkpointSeqs(t, db); len(got) != 0 {
		t.Fatalf("appends through a Log without a signer: checkpoints at %v, want none", got)
	}
	verifyOK(t, db, s.pub, 2*n, 2*n)

	register(t, signed, signerFrom(key), n) // replaces s
	removeOld()                             // must not empty the slot
	appendN(t, signed, 1)
	if got := checkpointSeqs(t, db); !reflect.DeepEqual(got, seqs(2*n+1)) {
		t.Fatalf("checkpoints at %v, want [%d]", got, 2*n+1)
	}
	verifyOK(t, db, s.pub, 2*n+1, 0)
}

// AppendAll appends its entries in order, one chain, and signs the
// checkpoints at the same entries as Appends one at a time would: batches
// of 3 with N=2 cross a checkpoint inside a batch, and a malformed entry
// makes the whole batch append nothing.
func TestAppendAllChainsAndCheckpoints(t *testing.T) {
	ctx := context.Background()
	l := NewLog(openDB(t))
	db := l.DB()
	s := newSigner()
	register(t, l, s, 2)
	for b := 0; b < 4; b++ {
		es := []Entry{{Actor: "guest:a", Action: "release"}, {Actor: "guest:b", Action: "release"}, {Actor: "guest:c", Action: "release", Reason: fmt.Sprint(b)}}
		if err := db.Tx(ctx, func(tx *sql.Tx) error { return l.AppendAll(ctx, tx, es) }); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := checkpointSeqs(t, db), seqs(2, 4, 6, 8, 10, 12); !reflect.DeepEqual(got, want) {
		t.Fatalf("checkpoints at %v, want %v", got, want)
	}
	verifyOK(t, db, s.pub, 12, 0)
	var actor string
	if err := db.QueryRow(`SELECT actor FROM audit_log WHERE seq = 11`).Scan(&actor); err != nil || actor != "guest:b" {
		t.Fatalf("entry 11 by %q (%v), want guest:b: the batch's order", actor, err)
	}
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		return l.AppendAll(ctx, tx, []Entry{{Actor: "guest:a", Action: "release"}, {Actor: "guest:b"}})
	})
	if !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("AppendAll with an entry without action: %v, want ErrInvalidEntry", err)
	}
	verifyOK(t, db, s.pub, 12, 0)
}
