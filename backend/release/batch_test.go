package release

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"keyholder/backend/audit"
)

// TestBatchWithAFailingDecision runs one batch of the committer whose
// third decision fails by a failed statement (the duplicate key aborts a
// PostgreSQL transaction; there the batch first runs without savepoints
// and runs again with them) and whose fifth returns an error after its
// writes. Every other decision is committed exactly once, with exactly one
// audit entry each; the failing ones leave neither rows nor entries; and
// the audit chain verifies, on SQLite and on PostgreSQL, in an ordinary
// and in a keyed batch.
func TestBatchWithAFailingDecision(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			e := newEnv(t)
			ctx := e.ctx
			if _, err := e.db.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES ('taken', '0', 'now')`); err != nil {
				t.Fatal(err)
			}
			runs := map[string]int{}
			decision := func(key string, fail string) func(*sql.Tx) error {
				return func(tx *sql.Tx) error {
					runs[key]++
					if fail == "statement" {
						key = "taken" // a duplicate: the statement fails
					}
					if _, err := tx.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, '1', 'now')`, key); err != nil {
						return err
					}
					if err := e.svc.appendAudit(ctx, tx, audit.Entry{Actor: "test", Action: "batch.decision", Subject: key}); err != nil {
						return err
					}
					if fail == "error" {
						return errors.New("refused after writing")
					}
					return nil
				}
			}
			plan := []struct{ key, fail string }{{"k1", ""}, {"k2", ""}, {"k3", "statement"}, {"k4", ""}, {"k5", "error"}, {"k6", ""}}
			var batch []*job
			for _, p := range plan {
				j := &job{ctx: ctx, fn: decision(p.key, p.fail), done: make(chan error, 1)}
				if keyed {
					j.keys = []string{"test:" + p.key}
				}
				batch = append(batch, j)
			}
			e.svc.runBatch(batch)
			for i, p := range plan {
				err := <-batch[i].done
				if (err != nil) != (p.fail != "") {
					t.Fatalf("decision %s: error %v", p.key, err)
				}
			}
			rows, err := e.db.QueryContext(ctx, `SELECT key FROM settings WHERE key LIKE 'k%' ORDER BY key`)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for rows.Next() {
				var k string
				rows.Scan(&k)
				keys = append(keys, k)
			}
			rows.Close()
			if got := strings.Join(keys, ","); got != "k1,k2,k4,k6" {
				t.Fatalf("committed %s, want k1,k2,k4,k6", got)
			}
			entries, err := audit.List(ctx, e.db, audit.Query{Action: "batch.decision", Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var subjects []string
			for i := len(entries) - 1; i >= 0; i-- {
				subjects = append(subjects, entries[i].Subject)
			}
			if got := strings.Join(subjects, ","); got != "k1,k2,k4,k6" {
				t.Fatalf("audit entries for %s, want k1,k2,k4,k6 in order", got)
			}
			if _, err := audit.Verify(ctx, e.db, nil); err != nil {
				t.Fatalf("audit chain: %v", err)
			}
			// Each decision ran at most twice (the batch's second run), and
			// those after the first failure at least once.
			for _, p := range plan {
				if runs[p.key] < 1 || runs[p.key] > 2 {
					t.Fatalf("decision %s ran %d times", p.key, runs[p.key])
				}
			}
		})
	}
}
