package custody

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"keyholder/backend/audit"
	"keyholder/backend/store"
)

const testPass = "correct horse battery"

func appendPlain(t *testing.T, log *audit.Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		// As the release engine does: an append through custody's AuditLog
		// in its own transaction, with no custody call around it.
		if _, err := log.AppendDB(context.Background(), audit.Entry{Actor: "guest:vm1", Action: "heartbeat", Decision: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
}

func checkpointsAt(t *testing.T, db *store.DB) []int64 {
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

func wantReport(t *testing.T, s *Service, entries, unsigned int64) {
	t.Helper()
	rep, err := s.VerifyAudit(context.Background())
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if rep.Entries != entries || rep.Unsigned != unsigned {
		t.Fatalf("report = %+v, want %d entries, %d after the last checkpoint", rep, entries, unsigned)
	}
}

// While unlocked, entries that other packages append through AuditLog get a
// checkpoint at exactly every Nth entry, signed with the console key.
func TestUnlockedAppendsCheckpointEveryN(t *testing.T) {
	const n = 7
	s := New(openTestDB(t, t.TempDir()), Options{KDF: testKDF, CheckpointEvery: n})
	if _, err := s.Init(context.Background(), "alice", []byte(testPass)); err != nil { // entry 1
		t.Fatal(err)
	}
	appendPlain(t, s.AuditLog(), 3*n+5-1)
	if got, want := checkpointsAt(t, s.DB()), []int64{n, 2 * n, 3 * n}; !reflect.DeepEqual(got, want) {
		t.Fatalf("checkpoints at %v, want %v", got, want)
	}
	wantReport(t, s, 3*n+5, 5)
	// The clean shutdown signs the tail.
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := checkpointsAt(t, s.DB()), []int64{n, 2 * n, 3 * n, 3*n + 5}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after Close: checkpoints at %v, want %v", got, want)
	}
	wantReport(t, s, 3*n+5, 0)
}

// While locked, appends work and sign nothing (Checkpoint has no key
// either); the first append after unlock (here the unlock's own audit entry)
// catches up.
func TestLockedAppendsCatchUpAtUnlock(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	appendPlain(t, s.AuditLog(), 5) // entries 2..6; checkpoint at 5
	s.Lock()
	appendPlain(t, s.AuditLog(), 12) // 7..18
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if got := checkpointsAt(t, s.DB()); !reflect.DeepEqual(got, []int64{5}) {
		t.Fatalf("while locked: checkpoints at %v, want [5]", got)
	}
	wantReport(t, s, 18, 13)
	if _, err := s.Unlock(ctx, "alice", []byte(testPass)); err != nil {
		t.Fatal(err)
	}
	// Entry 19 is the unlock's officer.auth; it carries the catch-up.
	if got := checkpointsAt(t, s.DB()); !reflect.DeepEqual(got, []int64{5, 19}) {
		t.Fatalf("after unlock: checkpoints at %v, want [5 19]", got)
	}
	appendPlain(t, s.AuditLog(), 5) // 20..24: the next at 24
	if got := checkpointsAt(t, s.DB()); !reflect.DeepEqual(got, []int64{5, 19, 24}) {
		t.Fatalf("checkpoints at %v, want [5 19 24]", got)
	}
	wantReport(t, s, 24, 0)
}

// Checkpoint catches up on entries appended while no key was in the audit
// log's signer slot, without waiting for the next append.
func TestCheckpointCatchesUp(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	s.Lock()
	appendPlain(t, s.AuditLog(), 7) // 2..8
	// Unlock without an audited login: adopt is what Unlock does with a
	// verified master key, before it appends.
	o, err := findOfficer(ctx, s.DB(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	master, err := unwrapMaster([]byte(testPass), o.salt, o.wrapped, o.kdf, mustConsoleID(t, s), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.adopt(ctx, master, mustConsoleID(t, s)); err != nil {
		t.Fatal(err)
	}
	if got := checkpointsAt(t, s.DB()); len(got) != 0 {
		t.Fatalf("checkpoints at %v before Checkpoint, want none", got)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if got := checkpointsAt(t, s.DB()); !reflect.DeepEqual(got, []int64{8}) {
		t.Fatalf("after Checkpoint: %v, want [8]", got)
	}
	wantReport(t, s, 8, 0)
}

func mustConsoleID(t *testing.T, s *Service) string {
	t.Helper()
	id, err := consoleID(context.Background(), s.DB())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Two consoles in one process each sign their own log with their own key.
func TestSignersArePerDatabase(t *testing.T) {
	a, _ := newTestService(t)
	b, _ := newTestService(t)
	appendPlain(t, a.AuditLog(), 9)
	appendPlain(t, b.AuditLog(), 4)
	if got := checkpointsAt(t, a.DB()); !reflect.DeepEqual(got, []int64{5, 10}) {
		t.Fatalf("console a: checkpoints at %v", got)
	}
	if got := checkpointsAt(t, b.DB()); !reflect.DeepEqual(got, []int64{5}) {
		t.Fatalf("console b: checkpoints at %v", got)
	}
	wantReport(t, a, 10, 0)
	wantReport(t, b, 5, 0)
	pa, _, _ := a.AuditPublicKey(context.Background())
	if _, err := audit.Verify(context.Background(), b.DB(), pa); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("b's log under a's key: %v, want ErrTampered", err)
	}
}

// Appenders, custody writes and Lock/Unlock running together: no deadlock
// (custody appends while holding its own lock, and Sign must not take it
// again), one valid chain, every checkpoint under the console key, and no
// two checkpoints closer than N (a catch-up after a locked period may be
// further apart).
func TestCheckpointsUnderLockChurn(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestService(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				if _, err := s.AuditLog().AppendDB(ctx, audit.Entry{Actor: fmt.Sprintf("guest:vm%d", g), Action: "heartbeat"}); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			if _, _, _, err := s.CreateVolume(ctx, "officer:alice", "", "disk"); err != nil && !errors.Is(err, ErrLocked) {
				errs <- err
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			s.Lock()
			if _, err := s.Unlock(ctx, "alice", []byte(testPass)); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rep, err := s.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checkpoints == 0 {
		t.Fatalf("no checkpoints: %+v", rep)
	}
	prev := int64(0)
	for _, c := range checkpointsAt(t, s.DB()) {
		if c-prev < s.opts.CheckpointEvery {
			t.Fatalf("checkpoints at %d and %d, closer than N = %d", prev, c, s.opts.CheckpointEvery)
		}
		prev = c
	}
	pub, authentic, _ := s.AuditPublicKey(ctx)
	if !authentic || len(pub) != ed25519.PublicKeySize {
		t.Fatal("the service should be unlocked at the end")
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wantReport(t, s, rep.Entries, 0)
}
