package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/store"
)

// auditVerifyJSON runs `audit verify --json` and decodes its answer.
func auditVerifyJSON(t *testing.T, data string) (code int, res struct {
	OK       bool         `json:"ok"`
	Report   audit.Report `json:"report"`
	FirstBad int64        `json:"first_bad_entry"`
	Problem  string       `json:"problem"`
}, stderr string) {
	t.Helper()
	code, out, stderr := runCLI(t, "audit", "verify", "--json", "--data", data)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("audit verify --json: %v\n%s%s", err, out, stderr)
	}
	return code, res, stderr
}

// `keyholder audit verify` reports how many entries follow the newest
// checkpoint, and names a log cut back to before that checkpoint.
func TestAuditVerifyTruncation(t *testing.T) {
	const n = 4
	cfg := testConfig
	cfg.Custody.CheckpointEvery = n
	ctx := context.Background()
	root := t.TempDir()
	pass := secretFile(t, root, "alice.pass", "alice's long passphrase")

	// Each case builds a console whose log has at least three checkpoints
	// and two entries after the newest, then cuts it.
	cases := []struct {
		name string
		cut  func(last int64) int64 // keep entries up to this seq; -1: no cut
		bad  func(last int64) int64 // the entry verify must name; 0: verifies
	}{
		{"intact", func(int64) int64 { return -1 }, func(int64) int64 { return 0 }},
		{"unsigned tail cut: undetectable, counted as 0", func(l int64) int64 { return l }, func(int64) int64 { return 0 }},
		{"cut to just before the newest checkpoint", func(l int64) int64 { return l - 1 }, func(l int64) int64 { return l }},
		{"cut to before the one before", func(l int64) int64 { return l - n - 1 }, func(l int64) int64 { return l - n }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(root, fmt.Sprint(i))
			l := cliLog{cfg: &cfg}
			l.run(t, 0, "init", "--data", data, "--officer", "alice", "--passphrase-file", pass)
			db, err := store.Open(ctx, filepath.Join(data, "keyholder.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			svc := custody.New(db, cfg.Custody)
			if _, err := svc.Unlock(ctx, "alice", []byte("alice's long passphrase")); err != nil {
				t.Fatal(err)
			}
			// Plain appends through the console's log, as the release
			// engine makes them, until two follow a checkpoint; then the
			// process "crashes" (no Close).
			for {
				e, err := svc.AuditLog().AppendDB(ctx, audit.Entry{Actor: "guest:vm1", Action: "heartbeat", Decision: "allow"})
				if err != nil {
					t.Fatal(err)
				}
				since, err := audit.SinceCheckpoint(ctx, db)
				if err != nil {
					t.Fatal(err)
				}
				if since >= n {
					t.Fatalf("%d entries follow the newest checkpoint after entry %d, N = %d", since, e.Seq, n)
				}
				if e.Seq >= 3*n && since == 2 {
					break
				}
			}
			svc.Lock()
			code, res, stderr := auditVerifyJSON(t, data)
			if code != 0 || !res.OK || res.Report.Unsigned != 2 || res.Report.Checkpoints < 3 {
				t.Fatalf("before the cut: exit %d, %+v %s", code, res, stderr)
			}
			last := res.Report.LastCheckpoint
			if keep := c.cut(last); keep >= 0 {
				if _, err := db.Exec(`DELETE FROM audit_log WHERE seq > ?`, keep); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			code, res, stderr = auditVerifyJSON(t, data)
			if want := c.bad(last); want == 0 {
				if code != 0 || !res.OK || res.Report.LastCheckpoint != last {
					t.Fatalf("exit %d, %+v %s; want it to verify", code, res, stderr)
				}
				if res.Report.Unsigned != res.Report.Entries-last {
					t.Fatalf("report %+v: unsigned should count the entries after %d", res.Report, last)
				}
				code, out, _ := runCLI(t, "audit", "verify", "--data", data)
				if want := fmt.Sprintf("the last at entry %d; %d entries follow it", last, res.Report.Unsigned); code != 0 || !strings.Contains(out, want) {
					t.Fatalf("text output %q lacks %q", out, want)
				}
				return
			} else if code != 1 || res.OK || res.FirstBad != want || !strings.Contains(res.Problem, "truncated") {
				t.Fatalf("exit %d, %+v; want entry %d named as truncated", code, res, want)
			}
			code, _, stderr = runCLI(t, "audit", "verify", "--data", data)
			if want := fmt.Sprintf("first bad entry is %d", c.bad(last)); code != 1 || !strings.Contains(stderr, want) {
				t.Fatalf("text: exit %d, %q; want %q", code, stderr, want)
			}
		})
	}
}
