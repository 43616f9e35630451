package custody

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

// The crash test re-executes the test binary as a helper that rotates
// volumes and writes backups in a loop, kills it with SIGKILL at a random
// moment, and checks the database after each kill.

const crashEnv = "KEYHOLDER_CUSTODY_CRASH_HELPER"

var crashPass = []byte("crash test passphrase")

// crashCheckpointEvery is the helper's N.
const crashCheckpointEvery = 7

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashHelper(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func crashHelper(dir string) {
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Location(nil, dir), store.Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	s := New(db, Options{KDF: testKDF, CheckpointEvery: crashCheckpointEvery})
	if _, err := s.Unlock(ctx, "alice", crashPass); err != nil {
		fmt.Println("unlock:", err)
		os.Exit(2)
	}
	vols, err := ListVolumes(ctx, db)
	if err != nil {
		os.Exit(2)
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		v := vols[i%len(vols)].ID
		gen, err := s.Rotate(ctx, "system:crash-test", v)
		if err != nil && !errors.Is(err, ErrRotationPending) {
			fmt.Println("rotate:", err)
			os.Exit(2)
		}
		if err := s.ConfirmRotation(ctx, "guest:crash-test", v, gen); err != nil {
			fmt.Println("confirm:", err)
			os.Exit(2)
		}
		if i%3 == 0 {
			tmp := filepath.Join(dir, "backup.kh.tmp")
			f, err := os.Create(tmp)
			if err != nil {
				os.Exit(2)
			}
			if _, err := s.WriteBackup(ctx, "system:crash-test", f); err != nil {
				fmt.Println("backup:", err)
				os.Exit(2)
			}
			f.Sync()
			f.Close()
			os.Rename(tmp, filepath.Join(dir, "backup.kh"))
		}
	}
}

func TestCrashDuringRotationAndBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	func() {
		db, err := store.Open(ctx, storetest.Location(t, dir), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		s := New(db, Options{KDF: testKDF})
		if _, err := s.Init(ctx, "alice", crashPass); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			_, _, sec, err := s.CreateVolume(ctx, "officer:alice", "", fmt.Sprintf("disk %d", i))
			if err != nil {
				t.Fatal(err)
			}
			clear(sec)
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	const kills = 60
	for k := 0; k < kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "ready\n" {
			cmd.Wait()
			t.Fatalf("kill %d: helper did not start: %q %s", k, line, stderr.String())
		}
		// A random point in the loop: the kill lands inside a rotation, a
		// confirmation, a checkpoint or a backup.
		time.Sleep(time.Duration(rng.IntN(40000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("kill %d: the helper ended on its own (%v): %s", k, err, stderr.String())
		}
		checkAfterCrash(t, dir, k)
	}
}

func checkAfterCrash(t *testing.T, dir string, k int) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Location(t, dir), store.Options{})
	if err != nil {
		t.Fatalf("kill %d: reopen: %v", k, err)
	}
	defer db.Close()
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatalf("kill %d: %v", k, err)
	}
	s := New(db, Options{KDF: testKDF})
	// Before this check unlocks (and appends): a checkpoint commits with the
	// entry that makes it due, so no kill leaves N or more committed
	// entries after the newest one.
	pub, _, err := s.AuditPublicKey(ctx)
	if err != nil {
		t.Fatalf("kill %d: %v", k, err)
	}
	if rep, err := audit.Verify(ctx, db, pub); err != nil || rep.Unsigned >= crashCheckpointEvery {
		t.Fatalf("kill %d: audit after the crash: %+v, %v; want fewer than %d entries after the newest checkpoint", k, rep, err, crashCheckpointEvery)
	}
	if _, err := s.Unlock(ctx, "alice", crashPass); err != nil {
		t.Fatalf("kill %d: unlock: %v", k, err)
	}
	vols, err := ListVolumes(ctx, db)
	if err != nil || len(vols) != 4 {
		t.Fatalf("kill %d: volumes %d, %v", k, len(vols), err)
	}
	for _, v := range vols {
		var currents, maxCurrent int
		db.QueryRow(`SELECT COUNT(*), COALESCE(MAX(generation), 0) FROM volume_generations WHERE volume_id = ? AND status = 'current'`, v.ID).Scan(&currents, &maxCurrent)
		if currents != 1 || maxCurrent != v.CurrentGeneration {
			t.Fatalf("kill %d: volume %s has %d current generations (%d), pointer %d", k, v.ID, currents, maxCurrent, v.CurrentGeneration)
		}
		sec, err := s.ReleaseSecret(ctx, v.ID, v.CurrentGeneration)
		if err != nil || len(sec) != SecretSize {
			t.Fatalf("kill %d: current secret of %s: %v", k, v.ID, err)
		}
		clear(sec)
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatalf("kill %d: audit: %v", k, err)
	}
	// A finished backup (renamed into place) always restores; check each
	// new one once.
	if f, err := os.Open(filepath.Join(dir, "backup.kh")); err == nil {
		if newBackup(t, f) {
			if _, err := RestoreBackup(ctx, f, filepath.Join(t.TempDir(), "r.db"), RestoreOptions{Passphrase: crashPass}); err != nil {
				t.Fatalf("kill %d: the last finished backup does not restore: %v", k, err)
			}
		}
		f.Close()
	}
	s.Lock()
}

var lastBackup os.FileInfo

func newBackup(t *testing.T, f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if lastBackup != nil && os.SameFile(fi, lastBackup) {
		return false
	}
	lastBackup = fi
	return true
}
