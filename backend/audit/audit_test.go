package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

func TestCanonicalVector(t *testing.T) {
	e := Entry{Seq: 7, At: time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC), Actor: "officer:alice", Action: "volume.rotate",
		Subject: "vol_1", Decision: "pending", Reason: "generation 2", EvidenceHash: "", PrevHash: GenesisHash}
	// Built by hand from the format comment, independently of Canonical.
	var want []byte
	want = append(want, "keyholder-audit-v1\n"...)
	for _, f := range []string{"7", "2026-03-04T05:06:07.000000008Z", "officer:alice", "volume.rotate", "vol_1", "pending", "generation 2", "", GenesisHash} {
		want = append(want, byte(len(f)>>24), byte(len(f)>>16), byte(len(f)>>8), byte(len(f)))
		want = append(want, f...)
	}
	if got := Canonical(e); string(got) != string(want) {
		t.Fatalf("Canonical =\n%q\nwant\n%q", got, want)
	}
	sum := sha256.Sum256(want)
	vec, err := os.ReadFile(filepath.Join("testdata", "vector-entry7.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := HashEntry(e); got != hex.EncodeToString(sum[:]) || got != strings.TrimSpace(string(vec)) {
		t.Fatalf("HashEntry = %s, want %x (testdata: %s)", got, sum, vec)
	}
}

type fixture struct {
	db  *store.DB
	key ed25519.PrivateKey
}

func newLog(t *testing.T, n int, checkpointAt ...int) fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Location(t, t.TempDir()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, key, _ := ed25519.GenerateKey(nil)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			e, err := NewLog(db).Append(ctx, tx, Entry{At: at.Add(time.Duration(i) * time.Second), Actor: "guest:vm" + fmt.Sprint(i%3), Action: "release",
				Subject: "vol_a", Decision: "allow", Reason: fmt.Sprintf("routine boot %d", i), EvidenceHash: strings.Repeat("ab", 32)})
			if err != nil {
				return err
			}
			if e.Seq != int64(i) {
				return fmt.Errorf("seq = %d, want %d", e.Seq, i)
			}
			for _, c := range checkpointAt {
				if c == i {
					_, err = WriteCheckpoint(ctx, tx, key, at)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return fixture{db, key}
}

func TestVerifyIntactLog(t *testing.T) {
	f := newLog(t, 12, 5, 10)
	rep, err := Verify(context.Background(), f.db, f.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 12 || rep.Checkpoints != 2 || rep.LastCheckpoint != 10 || rep.Unsigned != 2 {
		t.Fatalf("report = %+v", rep)
	}
	empty := newLog(t, 0)
	if rep, err := Verify(context.Background(), empty.db, nil); err != nil || rep.Entries != 0 {
		t.Fatalf("empty log: %+v %v", rep, err)
	}
}

func TestVerifyNamesFirstBadEntry(t *testing.T) {
	cases := []struct {
		name    string
		tamper  []string
		wantSeq int64
		want    string
	}{
		{"edit reason", []string{`UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 6`}, 6, "edited"},
		{"edit decision", []string{`UPDATE audit_log SET decision = 'deny' WHERE seq = 3`}, 3, "edited"},
		{"edit time", []string{`UPDATE audit_log SET at = '2020-01-01T00:00:00.000000000Z' WHERE seq = 9`}, 9, "edited"},
		{"delete one", []string{`DELETE FROM audit_log WHERE seq = 4`}, 4, "missing"},
		{"delete the first", []string{`DELETE FROM audit_log WHERE seq = 1`}, 1, "missing"},
		{"reorder two", []string{
			`UPDATE audit_log SET seq = 100 WHERE seq = 4`, `UPDATE audit_log SET seq = 4 WHERE seq = 7`, `UPDATE audit_log SET seq = 7 WHERE seq = 100`,
		}, 4, "link"},
		{"truncate past a checkpoint", []string{`DELETE FROM audit_log WHERE seq >= 9`}, 9, "truncated"},
		{"edit and rehash", nil, 7, "link"},
		{"forged checkpoint", []string{`UPDATE audit_checkpoints SET hash = (SELECT hash FROM audit_log WHERE seq = 9), seq = 9 WHERE seq = 10`}, 9, "signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newLog(t, 12, 5, 10)
			if c.tamper == nil {
				rehash(t, f.db, 6)
			}
			for _, q := range c.tamper {
				if _, err := f.db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Verify(context.Background(), f.db, f.key.Public().(ed25519.PublicKey))
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, ErrTampered) {
				t.Fatalf("err = %v, want a *VerifyError", err)
			}
			if ve.Seq != c.wantSeq || !strings.Contains(ve.Error(), c.want) {
				t.Fatalf("err = %v, want entry %d (%s)", err, c.wantSeq, c.want)
			}
		})
	}
	// Another key's signature is refused.
	f := newLog(t, 6, 3)
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := Verify(context.Background(), f.db, other); !errors.Is(err, ErrTampered) {
		t.Fatalf("checkpoints under another key: err = %v", err)
	}
}

// rehash edits entry seq and recomputes its own hash, so only the link from
// the next entry breaks.
func rehash(t *testing.T, db *store.DB, seq int64) {
	var e Entry
	var at string
	err := db.QueryRow(`SELECT seq, at, actor, action, subject, decision, reason, evidence_hash, prev_hash FROM audit_log WHERE seq = ?`, seq).
		Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Decision, &e.Reason, &e.EvidenceHash, &e.PrevHash)
	if err != nil {
		t.Fatal(err)
	}
	e.Reason = "rewritten"
	if _, err := db.Exec(`UPDATE audit_log SET reason = ?, hash = ? WHERE seq = ?`, e.Reason, hashOf(canonicalAt(e, at)), seq); err != nil {
		t.Fatal(err)
	}
}

func TestExportJSONLines(t *testing.T) {
	f := newLog(t, 3)
	var b strings.Builder
	n, err := Export(context.Background(), f.db, &b)
	if err != nil || n != 3 {
		t.Fatalf("Export = %d, %v", n, err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	prev := GenesisHash
	for i, l := range lines {
		var e Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Seq != int64(i+1) || e.PrevHash != prev || HashEntry(e) != e.Hash {
			t.Fatalf("line %d does not verify on its own: %+v", i+1, e)
		}
		prev = e.Hash
	}
}

func TestAppendRollsBackWithCaller(t *testing.T) {
	f := newLog(t, 2)
	ctx := context.Background()
	boom := errors.New("decision failed")
	err := f.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := NewLog(f.db).Append(ctx, tx, Entry{Actor: "system", Action: "x"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if seq, _, _ := Head(ctx, f.db); seq != 2 {
		t.Fatalf("head = %d after a rolled-back append, want 2", seq)
	}
	for _, e := range []Entry{{Action: "x"}, {Actor: "a"}, {Actor: strings.Repeat("a", 300), Action: "x"}} {
		if _, err := NewLog(f.db).AppendDB(ctx, e); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("Append(%.20v): err = %v, want ErrInvalidEntry", e, err)
		}
	}
}

func TestConcurrentAppendsKeepOneChain(t *testing.T) {
	f := newLog(t, 0)
	appendConcurrently(t, NewLog(f.db), 8, 25)
	rep, err := Verify(context.Background(), f.db, nil)
	if err != nil || rep.Entries != 200 {
		t.Fatalf("after concurrent appends: %+v, %v", rep, err)
	}
}
